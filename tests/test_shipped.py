"""Shipped files (issue 18, item 1): the top-level config/, playbooks/ and templates/ are the
source of truth, the package holds no copies, and an operator's copy in PENGUINCTL_HOME wins over
the shipped file of the same name, for each kind, file by file."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import REPO

from penguinctl import shipped

SHIPPED = {
    "config": {"plans.yaml", "schedules.yaml", "dnsbl.yaml"},
    "playbooks": {"mailu.yaml", "example.yaml"},
    "templates": {
        "mailu/mailu.env.j2",
        "mailu/docker-compose.yml.j2",
        "mailu/dkim_signing.conf.j2",
        "example/app.conf.j2",
        "billing/invoice.html.j2",
        "dashboard/base.html",
        "dashboard/login.html",
    },
}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    return home


def _put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_checkout_is_the_source_and_the_package_holds_no_copies():
    assert shipped.root() == REPO  # this test suite runs from an editable install
    for kind, names in SHIPPED.items():
        assert {str(p.relative_to(REPO / kind)) for p in (REPO / kind).rglob("*.*")} >= names
    in_package = [
        p for p in (REPO / "penguinctl").rglob("*")
        if p.suffix in (".yaml", ".yml", ".j2", ".html") and "__pycache__" not in p.parts
    ]  # fmt: skip
    assert in_package == []
    moved = ("playbooks", "templates", "billing/templates", "billing/plans.yaml", "web/templates")
    for old in moved:
        assert not (REPO / "penguinctl" / old).exists(), old
    assert not (REPO / "penguinctl" / shipped.IN_WHEEL).exists()


def test_without_overrides_every_lookup_is_the_shipped_file(home):
    for kind, names in SHIPPED.items():
        for name in names:
            found = shipped.find(kind, name)
            assert found == REPO / kind / name and found.is_file()
            assert shipped.is_shipped(found)
    assert shipped.search_dirs("templates") == (home / "templates", REPO / "templates")


def test_config_overrides_win_file_by_file(home):
    from penguinctl.billing.catalog import PACKAGED, catalog_path, load_catalog
    from penguinctl.control.config import schedules_path
    from penguinctl.health import dnsbl

    assert catalog_path() == PACKAGED == REPO / "config" / "plans.yaml"
    shipped_lists = dnsbl.default_lists()
    assert "zen.spamhaus.org" in shipped_lists.ip

    ours = _put(
        home / "config" / "dnsbl.yaml",
        "apiVersion: penguinctl/v1\nkind: BlockLists\nip: [bl.example.test]\ndomain: []\n",
    )
    assert shipped.find("config", "dnsbl.yaml") == ours and not shipped.is_shipped(ours)
    assert dnsbl.ip_lists() == ("bl.example.test",) and dnsbl.domain_lists() == ()
    # only the file the operator copied is overridden
    assert schedules_path({"PENGUINCTL_HOME": str(home)}) == REPO / "config" / "schedules.yaml"
    assert catalog_path() == PACKAGED

    plans = _put(home / "config" / "plans.yaml", PACKAGED.read_text())
    assert load_catalog().source == str(plans)
    # an explicit file still wins over both
    other = _put(home / "elsewhere.yaml", PACKAGED.read_text())
    assert catalog_path({"PENGUINCTL_HOME": str(home), "PENGUINCTL_PLANS": str(other)}) == other

    from penguinctl.errors import ConfigError

    ours.write_text("apiVersion: penguinctl/v1\nkind: BlockLists\nip: ['bad zone!']\ndomain: []\n")
    with pytest.raises(ConfigError, match=r"dnsbl.yaml: ip.0"):
        dnsbl.default_lists()
    ours.write_text("- zen.spamhaus.org\n")
    with pytest.raises(ConfigError, match=r"dnsbl.yaml: the block lists must be a mapping"):
        dnsbl.default_lists()
    ours.write_text("ip: [\n")
    with pytest.raises(ConfigError, match=r"dnsbl.yaml: not valid YAML"):
        dnsbl.default_lists()


def test_playbook_overrides_win_and_add_names(home):
    from penguinctl.playbook.loader import available, load_playbook

    assert load_playbook("example").name == "example"
    assert available() == ["example", "mailu"]
    text = (REPO / "playbooks" / "example.yaml").read_text()
    _put(home / "playbooks" / "example.yaml", text.replace("app_name: example", "app_name: ours"))
    _put(home / "playbooks" / "extra.yaml", text.replace("name: example", "name: extra", 1))
    assert load_playbook("example").doc.vars["app_name"] == "ours"
    assert load_playbook("extra").name == "extra"
    assert available() == ["example", "extra", "mailu"]
    # a path is a path, whatever the override directory holds
    assert load_playbook(str(REPO / "playbooks" / "example.yaml")).doc.vars["app_name"] == "example"


def test_template_overrides_sit_between_the_runs_directory_and_the_shipped(home, tmp_path):
    from penguinctl.playbook.render import render_template

    variables = {"app_name": "a", "server": "s", "version": "1", "listen_port": 1, "workers": 1,
                 "root": "/r"}  # fmt: skip
    assert render_template("example/app.conf.j2", variables).startswith(b"# a configuration")
    _put(home / "templates" / "example" / "app.conf.j2", "operator {{ app_name }}\n")
    assert render_template("example/app.conf.j2", variables) == b"operator a\n"
    run_dir = tmp_path / "run-templates"
    _put(run_dir / "example" / "app.conf.j2", "run {{ app_name }}\n")
    assert render_template("example/app.conf.j2", variables, run_dir) == b"run a\n"
    # a template the operator did not copy still comes from the shipped directory
    assert b"use_vault = false;" in render_template("mailu/dkim_signing.conf.j2", {})


def test_invoice_template_and_mailu_digest_follow_the_override(home):
    from datetime import UTC, datetime

    from penguinctl.billing.render import INVOICE_TEMPLATE, html
    from penguinctl.mailu.stack import playbook_digest

    before = playbook_digest()
    assert (REPO / "templates" / INVOICE_TEMPLATE).is_file()
    at = datetime(2026, 8, 1, tzinfo=UTC)
    invoice = {"number": "INV-<1>", "period_start": at, "period_end": at, "created_at": at,
               "currency": "usd"}  # fmt: skip
    _put(home / "templates" / INVOICE_TEMPLATE, "<p>{{ inv.number }} for {{ contact }}</p>")
    assert html(invoice, contact="A&B") == "<p>INV-&lt;1&gt; for A&amp;B</p>"  # still escaped
    _put(home / "templates" / "mailu" / "mailu.env.j2", "# the operator's env\n")
    assert playbook_digest() != before  # an operator's template plans a MailU update
