"""Output formats as one rule, output that never loses data, `get`/`describe` kinds, the plan
printout and shell completion (issue 17, "The CLI explains itself", items 4-9)."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys

import pytest
from clitools import QUICKSTART, agency_spec, run_inprocess

DOMAINS = ["acme-growth.example", "acme-mail.example", "acme-outreach.example"]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args):
        return run_inprocess(capsys, *args)

    run.home = tmp_path / "home"
    return run


@pytest.fixture
def applied(cli):
    res = cli("apply", "-f", QUICKSTART, "--yes")
    assert res.code == 0, res.err
    return cli


def _lines(text: str) -> list[str]:
    """Lines as a terminal shows them (without the escape codes of bold headers)."""
    return [re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in text.splitlines()]


def _terminal(monkeypatch, columns: int) -> None:
    """Make Rich see a terminal `columns` wide (in-process: capsys is not a tty)."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("NO_COLOR", "1")


# -- -o is one rule ----------------------------------------------------------------------------


def test_csv_where_a_command_prints_rows(applied):
    res = applied("get", "domains", "-o", "csv")
    assert res.code == 0, res.err
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert [r["name"] for r in rows] == DOMAINS
    assert rows[0]["tenant"] == "acme" and rows[0]["dmarc"] == "none"
    res = applied("state", "history", "-o", "csv")
    assert res.code == 0
    assert next(iter(csv.DictReader(io.StringIO(res.out))))["operation"] == "apply"


def test_an_unsupported_format_is_a_usage_error_before_anything_runs(cli, tmp_path):
    res = cli("apply", "-f", QUICKSTART, "--yes", "-o", "csv")
    assert res.code == 2
    assert res.err.strip() == (
        "error: -o csv: `penguinctl apply` does not print csv -- use -o text, wide, json or yaml"
    )
    assert not (tmp_path / "state.db").exists()  # refused before the command ran
    assert cli("get", "domains", "-o", "xml").code == 2
    res = cli("server", "ssh", "mx1", "-o", "json")
    assert res.code == 2 and "does not print json" in res.err


def test_invoices_show_follows_the_output_option(applied, monkeypatch):
    # `-o html` is an invoice's own format; other commands refuse it
    assert applied("get", "domains", "-o", "html").code == 2
    res = applied("invoices", "show", "1", "-o", "html")
    assert res.code == 2 and "invoice '1' not found" in res.err  # accepted, then looked up


# -- piped and narrow output never loses data --------------------------------------------------


def test_piped_tables_are_whole_tab_separated_rows(applied):
    res = applied("get", "domains")
    assert res.code == 0
    lines = res.out.splitlines()
    assert lines[0] == "name\ttenant\tserver\tdns\tdmarc"
    assert lines[1:] == [f"{d}\tacme\tmx1\tlocal-zones\tnone" for d in DOMAINS]
    assert "…" not in res.out and "│" not in res.out


def test_piped_dkim_status_repeats_whole_domains(applied):
    res = applied("dkim", "status")
    rows = [ln.split("\t") for ln in res.out.splitlines()[1:]]
    assert sorted(r[0] for r in rows) == DOMAINS
    assert "…" not in res.out


def test_piped_history_shows_counts_not_a_dict_repr(applied):
    res = applied("state", "history")
    assert res.code == 0
    assert "{" not in res.out and "'" not in res.out
    assert "create=" in res.out


def test_piped_multi_value_cells_give_one_row_per_value(applied):
    res = applied("dns", "records", "acme-mail.example")
    lines = res.out.splitlines()
    assert lines[0] == "name\ttype\tttl\tvalue"
    assert "mail\tA\t3600\t203.0.113.7" in lines
    dkim = [ln for ln in lines if "._domainkey\tTXT" in ln]
    assert len(dkim) == 1 and len(dkim[0].split("\t")[3]) > 300  # the whole key


def test_a_narrow_terminal_folds_long_values_and_wide_keeps_rows_whole(applied, monkeypatch):
    _terminal(monkeypatch, 60)
    res = applied("get", "domains")
    assert res.code == 0
    lines = _lines(res.out)
    assert "…" not in res.out
    assert max(len(ln) for ln in lines) <= 60
    assert "acme-outreach.example" not in res.out  # folded onto two lines, not cut
    text = "".join(ln.split("│")[1].strip() for ln in lines if ln.startswith("│"))
    for domain in DOMAINS:
        assert domain in text
    wide = applied("get", "domains", "-o", "wide")
    assert wide.code == 0
    assert sum(d in wide.out for d in DOMAINS) == 3  # one line per row
    assert max(len(ln) for ln in _lines(wide.out)) > 60


# -- get and describe: every kind ------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "tenants",
        "servers",
        "domains",
        "mailboxes",
        "dkim",
        "dnsproviders",
        "records",
        "backups",
        "campaigns",
        "invoices",
    ],
)
def test_get_accepts_every_kind_it_lists(applied, kind):
    res = applied("get", kind, "-o", "json")
    assert res.code == 0, res.err
    assert isinstance(res.json(), list)
    singular = applied(
        "get", kind.removesuffix("es") if kind == "mailboxes" else kind, "-o", "json"
    )
    assert singular.code == 0


def test_get_and_describe_invoices(applied, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-12-02")
    res = applied("billing", "run", "--period", "2026-11")
    assert res.code == 0, res.err
    invoices = applied("get", "invoices", "-o", "json").json()
    assert [i["tenant"] for i in invoices] == ["acme"]
    number = invoices[0]["number"]
    doc = applied("describe", "invoice", number, "-o", "json").json()
    assert doc["number"] == number and doc["lines"]
    assert applied("describe", "invoices", str(invoices[0]["id"])).code == 0
    res = applied("describe", "invoice", "INV-none")
    assert res.code == 2 and "invoice 'INV-none' is not recorded" in res.err
    assert applied("get", "invoices", "-o", "csv").out.startswith("id,number,tenant,period,")
    html = applied("invoices", "show", number, "-o", "html")
    assert html.code == 0 and "<html" in html.out.lower()


# -- apply FILE without -f ---------------------------------------------------------------------


def test_a_spec_without_dash_f_suggests_it(cli):
    res = cli("apply", str(QUICKSTART))
    assert res.code == 2
    assert f"Did you mean -f {QUICKSTART}?" in res.err
    res = cli("validate", "a.yaml", "b.yaml")
    assert "Did you mean -f a.yaml -f b.yaml?" in res.err
    res = cli("state", "history", "extra")  # no -f there: no suggestion
    assert res.code == 2 and "Did you mean" not in res.err


# -- the plan printout -------------------------------------------------------------------------


def test_plan_lines_say_what_applies_each_change(cli):
    res = cli("plan", "-f", QUICKSTART)
    assert res.code == 0, res.err
    assert "(acme, " not in res.out
    lines = res.out.splitlines()
    assert lines[0] == "Tenant acme:"
    assert any(
        ln.split() == ["+", "create", "dnsrecord/acme-mail.example/@/MX", "->", "DNS",
                       "provider", "local-zones"]
        for ln in lines
    )  # fmt: skip
    assert any("dkim/acme-mail.example/" in ln and "-> DKIM key in the secrets backend" in ln
               for ln in lines)  # fmt: skip


def test_a_big_plan_prints_a_summary_and_detail_prints_every_line(cli, tmp_path):
    spec = tmp_path / "agency.yaml"
    spec.write_text(agency_spec(120, mailboxes=1))
    res = cli("plan", "-f", spec)
    assert res.code == 0, res.err
    assert "changes, counted per tenant and kind (--detail lists every one" in res.out
    rows = [ln.split("\t") for ln in res.out.splitlines() if ln.startswith("agency\t")]
    by_kind = {r[1]: r for r in rows}
    assert by_kind["domain"][2:] == ["state store only", "120", "0", "0"]
    assert by_kind["dkim"][2:] == ["DKIM key in the secrets backend", "120", "0", "0"]
    assert "client00007.example" not in res.out
    detail = cli("plan", "-f", spec, "--detail")
    assert detail.code == 0
    assert "domain/client00007.example" in detail.out
    json_plan = cli("plan", "-f", spec, "-o", "json").json()
    assert detail.out.count("+ create") == json_plan["counts"]["create"]


# -- shell completion --------------------------------------------------------------------------


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_PENGUINCTL_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(cword)
    out = subprocess.run(
        [sys.executable, "-m", "penguinctl"], env=env, capture_output=True, text=True, timeout=60
    )
    return out.stdout.split()


def test_completion_completes_commands_kinds_and_options():
    assert _complete("penguinctl st", 1) == ["status", "state"]
    assert _complete("penguinctl get d", 2) == ["domains", "dkim", "dnsproviders"]
    assert "--tenant" in _complete("penguinctl get --t", 2)


def test_completion_installs_with_one_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for _ in range(2):
        res = run_inprocess(capsys, "completion", "install", "--shell", "bash")
        assert res.code == 0, res.err
        assert "bash completion installed in" in res.out
    script = tmp_path / ".bash_completions" / "penguinctl.sh"
    assert "_PENGUINCTL_COMPLETE=complete_bash" in script.read_text()
    assert (tmp_path / ".bashrc").read_text().count(f"source '{script}'") == 1
    res = run_inprocess(capsys, "completion", "install", "--shell", "tcsh")
    assert res.code == 2 and "--shell bash|zsh|fish|powershell" in res.err
