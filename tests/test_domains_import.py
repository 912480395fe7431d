"""`penguinctl domains import FILE.csv`: the parser, hostile input, the CLI, partial failures."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest
from clitools import QUICKSTART, run_inprocess
from daemons import NOT_APPLICABLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penguinctl.errors import SpecError
from penguinctl.spec import csvimport, load_specs
from penguinctl.spec.csvimport import check_against, parse_csv
from penguinctl.spec.documents import DomainEnvelope

HEADER = "domain,tenant,server,dns,mailboxes,dmarc_policy,dmarc_rua,tracking_host,tracking_target\n"
GOOD = (
    HEADER + 'new1.example,acme,mx1,local-zones,"john:John Smith:40;sara:Sara Lee",,'
    "dmarc@new1.example,,\n"
    "new2.example,acme,mx1,local-zones,,quarantine,,links,track.penguinctl.example\n"
    "new3.example,acme,mx1,local-zones,info,,,,\n"
)


def parse(text: str | bytes, name: str = "c.csv") -> csvimport.CsvImport:
    return parse_csv(name, text.encode() if isinstance(text, str) else text)


def messages(result: csvimport.CsvImport) -> list[str]:
    return [str(issue) for issue in sorted(result.issues, key=lambda i: i.location)]


# -- the parser -------------------------------------------------------------------------------
def test_valid_rows_become_domain_documents() -> None:
    result = parse(GOOD)
    assert result.issues == []
    assert [d.name for d in result.domains] == ["new1.example", "new2.example", "new3.example"]
    first, second, third = result.domains
    assert isinstance(first.envelope, DomainEnvelope)  # the model YAML documents use
    assert [(m.local, m.display_name, m.daily_limit) for m in first.envelope.spec.mailboxes] == [
        ("john", "John Smith", 40),
        ("sara", "Sara Lee", 40),
    ]
    assert first.envelope.spec.dmarc.rua == ["mailto:dmarc@new1.example"]
    assert second.envelope.spec.dmarc.policy == "quarantine"
    assert second.envelope.spec.tracking.host == "links"
    assert third.envelope.spec.mailboxes[0].display_name is None
    assert str(first.path) == "acme/new1.example.yaml"
    text = second.to_yaml()
    assert "kind: Domain" in text and "apiVersion: penguinctl/v1" in text
    assert "mailboxes" not in text and "pct" not in text  # only what the row set


def test_header_is_case_insensitive_any_order_with_bom_and_spaces() -> None:
    data = b"\xef\xbb\xbf DNS , Server,TENANT ,Domain\r\nlocal-zones,mx1,acme,A.Example.\r\n"
    result = parse(data)
    assert result.issues == []
    assert result.domains[0].name == "a.example"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("domain,tenant,server,dns,colour,dmarc", ["unknown column 'colour'", "'dmarc_rua'"]),
        ("domain,tenant", ["missing required column(s): server, dns"]),
        ("domain,tenant,server,dns,domain", ["column 'domain' appears twice"]),
        ("domain,tenant,server,dns,", ["column 5 of the header has no name"]),
    ],
)
def test_header_errors(header: str, expected: list[str]) -> None:
    result = parse(header + "\na.example,acme,mx1,zones\n")
    text = "\n".join(messages(result))
    for part in expected:
        assert part in text
    assert all(issue.location.line == 1 for issue in result.issues)
    assert result.domains == []


def test_every_bad_row_is_reported_with_its_line_and_column() -> None:
    text = (
        "domain,tenant,server,dns,mailboxes,dmarc_policy\n"  # line 1
        "\n"  # 2: blank lines are skipped
        "good.example,acme,mx1,zones,,\n"  # 3
        'bad_name,acme,mx1,zones,"multi\nline",\n'  # 4-5: a quoted cell across lines
        "b.example,ACME,mx1,,john:J:0,Reject\n"  # 6
        "c.example,acme,mx1,zones,john:x:y:z,\n"  # 7
        ",,,,,\n"  # 8: a spreadsheet's empty row
        "GOOD.example.,acme,mx1,zones,,\n"  # 9: duplicate of line 3
        "d.example,acme,mx1\n"  # 10: too few fields
    )
    result = parse(text)
    assert [d.name for d in result.domains] == ["good.example"]
    got = messages(result)
    assert got == [
        "c.csv:4:1: row: domain: 'bad_name' is not a valid domain name: each label is 1-63 "
        "letters, digits or '-', not starting or ending with '-'",
        "c.csv:4:1: row: mailboxes: entry 1, local: 'multi\\nline' is not a valid mailbox local "
        "part: use letters, digits and !#$%&'*+/=?^_`{|}~- with single dots between them "
        "(64 characters at most)",
        "c.csv:6:11: domain b.example: tenant: 'ACME' is not a valid name: use 1-63 lowercase "
        "letters, digits, '.', '-' or '_', starting and ending with a letter or digit",
        "c.csv:6:20: domain b.example: dns: empty; every row needs domain, tenant, server, dns",
        "c.csv:6:21: domain b.example: mailboxes: entry 1, daily_limit: input should be greater "
        "than or equal to 1",
        "c.csv:6:30: domain b.example: dmarc_policy: input should be 'none', 'quarantine' or "
        "'reject'",
        "c.csv:7:26: domain c.example: mailboxes: 'john:x:y:z' has 4 parts; write "
        "local:Display Name:daily_limit, entries separated by ';'",
        "c.csv:9:1: domain good.example is listed twice (first at line 3); remove one",
        "c.csv:10:1: row has 3 fields but the header has 6; quote cells that contain a comma",
    ]


def test_mailbox_rules_are_those_of_yaml_specs() -> None:
    head = "domain,tenant,server,dns,mailboxes\n"
    result = parse(head + "a.example,acme,mx1,zones,john;sara:Sara;john:John Smith:30\n")
    assert messages(result) == [
        "c.csv:2:26: domain a.example: mailboxes: 'john' listed twice; remove one"
    ]
    ok = parse(head + "a.example,acme,mx1,zones,john:: 25 ; ;sara:Sara Lee\n")
    boxes = ok.domains[0].envelope.spec.mailboxes
    assert [(b.local, b.display_name, b.daily_limit) for b in boxes] == [
        ("john", None, 25),
        ("sara", "Sara Lee", 40),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "c.csv: file is empty"),
        (HEADER.encode(), "c.csv: no domains: the file has only a header"),
        (b"\xff\xfed\x00o\x00", "c.csv:1:1: file is UTF-16-encoded"),
        (b"domain,tenant,server,dns\nb\xe9.example,a,b,c\n", "c.csv:2:2: file is not valid UTF-8"),
        (b"domain,tenant,server,dns\na.example,a\x00,b,c\n", "c.csv:2:12: NUL byte in file"),
        (b'domain,tenant,server,dns\na.example,"acme,mx1,zones\n', "c.csv:2:1: malformed CSV"),
        (b'domain,tenant,server,dns\na.example,"ac"me,mx1,zones\n', "c.csv:2:1: malformed CSV"),
        (b'domain,tenant,server,dns\n"' + b"x" * 200_000 + b'"\n', "c.csv:2:1: malformed CSV"),
    ],
    ids=["empty", "header", "utf16", "latin1", "nul", "open-quote", "bad-quote", "huge-cell"],
)
def test_hostile_input_is_one_clear_issue(data: bytes, expected: str) -> None:
    result = parse(data)
    assert result.domains == []
    assert any(message.startswith(expected) for message in messages(result)), messages(result)


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    long_cell = "a" * (csvimport.MAX_CELL_CHARS + 1)
    result = parse(f"domain,tenant,server,dns\na.example,acme,{long_cell},zones\n")
    assert messages(result) == [
        "c.csv:2:16: domain a.example: server: 10,001 characters long; the limit is 10,000"
    ]
    monkeypatch.setattr(csvimport, "MAX_ROWS", 3)
    rows = "".join(f"d{i}.example,acme,mx1,zones\n" for i in range(5))
    result = parse("domain,tenant,server,dns\n" + rows)
    assert messages(result) == ["c.csv:5:1: more than 3 rows; split the file"]
    monkeypatch.setattr(csvimport, "MAX_CSV_BYTES", 100)
    result = parse("domain,tenant,server,dns\n" + rows)
    assert messages(result) == ["c.csv: file is larger than 0 MiB; split it"]


def test_read_csv_reports_unreadable_files(tmp_path: Path) -> None:
    missing = csvimport.read_csv(tmp_path / "nope.csv", "nope.csv")
    assert [str(i) for i in missing.issues] == [
        "nope.csv: cannot read file: no such file or directory"
    ]
    assert [str(i) for i in csvimport.read_csv(tmp_path, "dir").issues] == [
        "dir: cannot read file: is a directory"
    ]


def test_checks_against_the_specs(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: beta}\n---\n"
        "apiVersion: penguinctl/v1\nkind: DnsProvider\nmetadata: {name: beta-zones, tenant: beta}\n"
        "spec: {type: zonefile}\n"
    )
    specs = load_specs([QUICKSTART, other])
    result = parse(
        "domain,tenant,server,dns\n"
        "acme-mail.example,acme,mx1,local-zones\n"  # already in the quickstart
        "a.example,acmee,mx2,local-zone\n"  # typos
        "b.example,acme,mx1,beta-zones\n"  # another tenant's DNS provider
        "c.example,acme,mx1,local-zones\n"
    )
    assert result.issues == []
    got = [str(i) for i in sorted(check_against(result, specs), key=str)]
    assert got == [
        "c.csv:2:1: domain acme-mail.example is already defined in the specs "
        f"({QUICKSTART}:23); remove the row, or change that document instead",
        "c.csv:3:11: domain a.example: tenant 'acmee' is not defined (defined tenants: acme, "
        "beta); did you mean 'acme'?",
        "c.csv:3:17: domain a.example: server 'mx2' is not defined (defined servers: mx1); did "
        "you mean 'mx1'?",
        "c.csv:3:21: domain a.example: dns 'local-zone' is not defined (defined dns providers: "
        "beta-zones, local-zones); did you mean 'local-zones'?",
        "c.csv:4:20: domain b.example: dns 'beta-zones' belongs to tenant 'beta', not 'acme'; "
        "use a dns provider of tenant 'acme' or a shared one (without metadata.tenant)",
    ]
    assert len(check_against(result, specs, replaceable={"acme-mail.example"})) == 4


# -- fuzzing ----------------------------------------------------------------------------------
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOKENS = [
    ",", '"', '""', "\n", "\r\n", "\r", ";", ":", " ", "\t", "\x00", "\ufeff", "\x85", "\u2028",
    "é", "\U0001f600", "a.example", "acme", "mx1", "zones", "john", "John Smith", "40", "-1",
    "none", "reject", "x" * 300, "=cmd|' /C calc'!A0", "yes", "null", "~", "#", "- ", "{a: b}",
    "'", "\\", "domain", "tenant", "server", "dns", "mailboxes", "dmarc_rua", "tracking_host",
]  # fmt: skip
CELLS = [
    "", " ", "a.example", "B.example.", "xn--bcher-kva.example", "acme", "mx1", "zones", "none",
    "quarantine", "track", "t.example", "john", "john:John Smith:40;sara", "sara:Dr: Who",
    "o'brien:O'Brien", 'say "hi"', "yes:null:7", "a:#1: 3", "x:- y", "x:{a: b}", "x:[1]",
    "x:é ü", "x:\x85next", "x:line\u2028sep", "x:tab\there", "ops@a.example;mailto:b@a.example",
    "-", "1e999", "x" * 70,
]  # fmt: skip
BASE = (
    "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
    "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1, tenant: acme}\n"
    "spec: {provider: external, external: {ips: [192.0.2.1]}, hostname: mx.acme.example}\n---\n"
    "apiVersion: penguinctl/v1\nkind: DnsProvider\nmetadata: {name: zones, tenant: acme}\n"
    "spec: {type: zonefile}\n"
)


def _check_result(result: csvimport.CsvImport, data: bytes) -> None:
    lines = data.count(b"\n") + data.count(b"\r") + 1
    for issue in result.issues:
        assert issue.location.file == "c.csv"
        assert 0 <= issue.location.line <= lines and issue.location.col >= 0
        assert issue.message and "Traceback" not in issue.message
        str(SpecError([issue]))


@FUZZ
@given(data=st.binary(max_size=3000))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check_result(parse(data), data)


@FUZZ
@given(text=st.lists(st.sampled_from(TOKENS), max_size=80).map("".join))
def test_fuzz_csv_like_text(text: str) -> None:
    data = (HEADER + text).encode("utf-8", "surrogatepass")
    _check_result(parse(data), data)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("csvfuzz")
    (directory / "base.yaml").write_text(BASE)
    return directory


@FUZZ
@given(
    rows=st.lists(st.lists(st.sampled_from(CELLS) | st.text(max_size=12), min_size=9, max_size=9))
)
def test_fuzz_random_cells(rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows([HEADER.strip().split(","), *rows])
    data = out.getvalue().encode("utf-8", "surrogatepass")
    _check_result(parse(data), data)


NAMES = st.sampled_from(
    [
        "",
        "John Smith",
        "O'Brien",
        'say "hi"',
        "yes",
        "null",
        "~",
        "#1",
        "- a",
        "{a: b}",
        "[1]",
        "é ü",
        "x\x85y",
        "line\u2028sep",
        "1e3",
        "0x1F",
        "  padded  ",
        "a, b",
        "\U0001f600",
        "@x",
    ]
) | st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters=":;"))
MAILBOX = st.tuples(
    st.sampled_from(["john", "sara", "a.b", "x+y", "o'hara", "info"]),
    NAMES,
    st.sampled_from(["", "1", "40", "007", " 25 "]),
).map(":".join)
VALID_ROW = st.tuples(
    st.lists(MAILBOX, max_size=3).map(";".join),
    st.sampled_from(["", "none", "quarantine", "reject"]),
    st.sampled_from(["", "ops@a.example", "a@b.example; mailto:c@d.example"]),
    st.sampled_from(["", "track", "links.t"]),
    st.sampled_from(["", "t.example", "track.penguinctl.example."]),
)


@FUZZ
@given(rows=st.lists(VALID_ROW, min_size=1, max_size=4))
def test_fuzz_rows_round_trip_through_yaml(fuzz_dir: Path, rows: list[tuple[str, ...]]) -> None:
    """A valid row becomes a document that is written as YAML and loads back as the same Domain."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER.strip().split(","))
    for index, row in enumerate(rows):
        writer.writerow([f"d{index}.example", "acme", "mx1", "zones", *row])
    data = out.getvalue().encode("utf-8")
    result = parse(data)
    _check_result(result, data)
    for old in fuzz_dir.glob("acme/*.yaml"):
        old.unlink()
    for domain in result.domains:
        path = fuzz_dir / domain.path
        path.parent.mkdir(exist_ok=True)
        path.write_text(domain.to_yaml(), encoding="utf-8")
    specs = load_specs([fuzz_dir])
    for domain in result.domains:
        assert specs.domains[domain.name].spec == domain.envelope.spec


# -- the command ------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("PENGUINCTL_HOME", str(home))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.chdir(tmp_path)

    def run(*args):
        return run_inprocess(capsys, *args)

    run.home = home
    return run


def _csv(tmp_path: Path, text: str, name: str = "clients.csv") -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return Path(name)  # the tests run in tmp_path: locations show the name as given


def test_check_only_prints_counts_and_writes_nothing(cli, tmp_path):
    extra = "new4.example,beta,shared-mx,local-zones,,,,,\n"
    beta = tmp_path / "beta.yaml"
    beta.write_text("apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: beta}\n")
    res = cli("domains", "import", _csv(tmp_path, GOOD + extra), "-f", QUICKSTART, "-f", beta)
    assert res.code == 3, res.err  # shared-mx does not exist
    assert "clients.csv:5:19: domain new4.example: server 'shared-mx' is not defined" in res.err
    assert "clients.csv:5:29: domain new4.example: dns 'local-zones' belongs to tenant 'acme'" in (
        res.err
    )
    assert "2 error(s); nothing was written." in res.err

    res = cli("domains", "import", _csv(tmp_path, GOOD), "-f", QUICKSTART)
    assert res.code == 0, res.err
    assert "3 domain(s), 3 mailbox(es)" in res.out and "would write" in res.out
    data = cli("domains", "import", "clients.csv", "-f", QUICKSTART, "-o", "json").json()
    assert data["tenants"] == {"acme": {"domains": 3, "mailboxes": 3}}
    assert data["written"] == [] and data["out_dir"] is None
    res = cli("get", "domains", "-o", "json")  # nothing written, not even a state
    assert res.code == 2 and "no state store yet" in res.err


def test_invalid_csv_exits_3_with_every_row_and_writes_nothing(cli, tmp_path):
    bad = GOOD.replace("quarantine", "strict").replace("info", "in fo") + "x,acme,mx1,nope,,,,,\n"
    res = cli(
        "domains", "import", _csv(tmp_path, bad), "-f", QUICKSTART, "--out-dir", "out", "--apply"
    )
    assert res.code == 3
    lines = [line for line in res.err.splitlines() if line.startswith("error: clients.csv:")]
    assert [line.split(":")[2] for line in lines] == ["3", "4", "5", "5"]
    assert "Traceback" not in res.err and "nothing was written" in res.err
    assert not (tmp_path / "out").exists()
    assert not (cli.home / "zones").exists()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"domain,tenant,server,dns\n\xff\xff\n", "clients.csv:2:1: file is not valid UTF-8"),
        (b"\x00\x01\x02", "clients.csv:1:1: NUL byte in file"),
        (b'domain,tenant,server,dns\n"a.example,acme\n', "clients.csv:2:1: malformed CSV"),
        (b"domain,tenant,server,dns\n" + b"a" * 30_000 + b",b,c,d\n", "30,000 characters long"),
    ],
)
def test_hostile_csv_through_the_cli(cli, tmp_path, data, expected):
    path = tmp_path / "clients.csv"
    path.write_bytes(data)
    res = cli("domains", "import", path, "-f", QUICKSTART, "--out-dir", "out")
    assert res.code == 3, res.err
    assert expected in res.err and "Traceback" not in res.err
    assert not (tmp_path / "out").exists()


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_fuzz_the_command_never_shows_a_traceback(cli, tmp_path, text):
    (tmp_path / "clients.csv").write_bytes((HEADER + text).encode("utf-8", "surrogatepass"))
    res = cli("domains", "import", "clients.csv", "-f", QUICKSTART, "-o", "json")
    assert res.code in (0, 3), res.err
    assert "Traceback" not in res.err and "unexpected failure" not in res.err
    if res.code == 3:
        assert res.err.startswith("error: clients.csv") and res.out == ""


def test_huge_file_and_usage_errors(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(csvimport, "MAX_CSV_BYTES", 1024 * 1024)
    path = tmp_path / "clients.csv"
    path.write_bytes(HEADER.encode() + b"a.example,acme,mx1,local-zones,,,,,\n" * 40_000)
    res = cli("domains", "import", path, "-f", QUICKSTART)
    assert res.code == 3 and "file is larger than 1 MiB; split it" in res.err
    res = cli("domains", "import", _csv(tmp_path, GOOD))
    assert res.code == 2 and "no spec given" in res.err
    res = cli("domains", "import", tmp_path / "missing.csv", "-f", QUICKSTART)
    assert res.code == 3 and "cannot read file: no such file or directory" in res.err


def test_out_dir_is_idempotent_and_never_silently_overwrites(cli, tmp_path):
    csv_path = _csv(tmp_path, GOOD)
    res = cli("domains", "import", csv_path, "-f", QUICKSTART, "--out-dir", "out", "-o", "json")
    assert res.code == 0, res.err
    assert sorted(res.json()["written"]) == [f"out/acme/new{i}.example.yaml" for i in (1, 2, 3)]
    target = tmp_path / "out" / "acme" / "new2.example.yaml"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert list((tmp_path / "out").rglob(".*")) == []  # no temporary files left
    assert cli("validate", "-f", QUICKSTART, "-f", "out").code == 0

    # the same import again, with the written files among the specs: nothing to do
    res = cli("domains", "import", csv_path, "-f", QUICKSTART, "-f", "out", "--out-dir", "out")
    assert res.code == 0, res.err
    assert "Wrote 0 file(s) under out (3 already up to date)" in res.out
    # ...but into another directory, they are duplicates
    res = cli("domains", "import", csv_path, "-f", QUICKSTART, "-f", "out", "--out-dir", "o2")
    assert res.code == 3 and "new1.example is already defined in the specs" in res.err

    target.write_text(target.read_text() + "# reviewed by ops\n")
    edited = target.read_bytes()
    changed = _csv(tmp_path, GOOD.replace("quarantine", "reject"), "changed.csv")
    res = cli("domains", "import", changed, "-f", QUICKSTART, "--out-dir", "out")
    assert res.code == 2
    assert "1 file(s) in the way, nothing was written" in res.err and "--overwrite" in res.err
    assert target.read_bytes() == edited
    res = cli("domains", "import", changed, "-f", QUICKSTART, "--out-dir", "out", "--overwrite")
    assert res.code == 0, res.err
    assert "policy: reject" in target.read_text()


def test_apply_needs_confirmation_without_yes(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    res = cli("domains", "import", _csv(tmp_path, GOOD), "-f", QUICKSTART, "--apply")
    assert res.code == 2 and "--yes" in res.err
    assert cli("get", "domains", "-o", "json").json() == []


def _zone_names(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "zones").iterdir())


@pytest.fixture
def cli_both(tmp_path, monkeypatch, capsys, state_url):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    monkeypatch.delenv("PENGUINCTL_MASTER_KEY", raising=False)
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    monkeypatch.chdir(tmp_path)

    def run(*args):
        return run_inprocess(capsys, *args)

    run.home = tmp_path / "home"
    return run


def test_round_trip_import_validate_apply_get(cli_both, tmp_path):
    cli = cli_both
    csv_path = _csv(tmp_path, GOOD)
    assert cli("domains", "import", csv_path, "-f", QUICKSTART, "--out-dir", "specs").code == 0
    assert cli("validate", "-f", QUICKSTART, "-f", "specs").code == 0
    res = cli("apply", "-f", QUICKSTART, "-f", "specs", "--yes")
    assert res.code == 0, res.err
    domains = {d["name"]: d for d in cli("get", "domains", "-o", "json").json()}
    assert {"new1.example", "new2.example", "new3.example", "acme-mail.example"} <= set(domains)
    assert domains["new2.example"]["dmarc"] == "quarantine"
    desc = cli("describe", "domain", "new1.example", "-o", "json").json()
    assert sorted(desc["mailboxes"]) == ["john@new1.example", "sara@new1.example"]
    records = cli("dns", "records", "new2.example", "-o", "json").json()
    by = {(r["name"], r["type"]): r["values"] for r in records}
    assert by[("links", "CNAME")] == ["track.penguinctl.example."]
    # importing and applying again changes nothing
    res = cli(
        "domains", "import", csv_path, "-f", QUICKSTART, "-f", "specs", "--out-dir", "specs",
        "--apply", "--yes", "-o", "json",
    )  # fmt: skip
    assert res.code == 0, res.err
    data = res.json()
    assert data["apply"]["status"] == "no-op"
    assert {r["status"] for r in data["results"]} == {"unchanged"}


def test_apply_from_a_temporary_directory(cli, tmp_path):
    res = cli("domains", "import", _csv(tmp_path, GOOD), "-f", QUICKSTART, "--apply", "--yes")
    assert res.code == 0, res.err
    assert "Imported domains: 3 applied, 0 unchanged, 0 failed" in res.out
    assert "new1.example.zone" in _zone_names(cli.home)
    assert list(tmp_path.glob("acme")) == []  # nothing written next to the CSV


BROKEN = """\
apiVersion: penguinctl/v1
kind: DnsProvider
metadata: {name: broken, tenant: acme}
spec: {type: zonefile, directory: /proc/self/penguinctl-cannot-create-this}
"""


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason=NOT_APPLICABLE + "needs Linux /proc")
def test_one_failing_domain_does_not_block_the_others(cli, tmp_path):
    """The DNS write of one domain fails (its zone directory cannot be created, even by root)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    rows = GOOD.replace("new2.example,acme,mx1,local-zones", "new2.example,acme,mx1,broken")
    args = ("domains", "import", _csv(tmp_path, rows), "-f", QUICKSTART, "-f", broken, "--yes")
    res = cli(*args, "--apply", "--out-dir", "specs", "-o", "json")
    assert res.code == 6, res.err  # partial apply
    data = res.json()
    by_domain = {r["domain"]: r for r in data["results"]}
    failed = by_domain["new2.example"]
    assert failed["status"] == "failed" and failed["failed"] == 5
    assert (
        "cannot write /proc/self/penguinctl-cannot-create-this/new2.example.zone"
        in (failed["errors"][0])
    )
    assert by_domain["new1.example"]["status"] == "applied"
    assert by_domain["new3.example"]["status"] == "applied"
    assert not by_domain["acme-mail.example"]["imported"]
    assert data["apply"]["status"] == "partial"
    zones = _zone_names(cli.home)
    assert "new1.example.zone" in zones and "new3.example.zone" in zones
    assert "new2.example.zone" not in zones
    before = {name: (cli.home / "zones" / name).read_bytes() for name in zones}

    # text output: a per-domain line saying what failed and why; a re-run retries only that
    res = cli(*args, "--apply", "--out-dir", "specs")
    assert res.code == 5, res.err  # nothing else left to apply
    assert "Imported domains: 0 applied, 2 unchanged, 1 failed" in res.out
    assert "x new2.example: 5 change(s) failed, 0 skipped: dns:broken: cannot write" in res.out
    assert {name: (cli.home / "zones" / name).read_bytes() for name in zones} == before
    domains = {d["name"] for d in cli("get", "domains", "-o", "json").json()}
    assert {"new1.example", "new2.example", "new3.example"} <= domains


def test_an_unreadable_zone_file_fails_only_its_domain(cli, tmp_path):
    (cli.home / "zones" / "new2.example.zone").mkdir(parents=True)
    args = ("domains", "import", _csv(tmp_path, GOOD), "-f", QUICKSTART, "--apply", "--yes")
    res = cli(*args)
    assert res.code == 6, res.err
    zones = _zone_names(cli.home)
    assert "new1.example.zone" in zones and "new3.example.zone" in zones
    statuses = {r["domain"]: r["status"] for r in cli(*args, "-o", "json").json()["results"]}
    assert statuses["new2.example"] == "failed"
    assert statuses["new1.example"] == statuses["new3.example"] == "unchanged"
    # a recorded zone that became unreadable: the plan warns and keeps its recorded state
    zone1 = cli.home / "zones" / "new1.example.zone"
    zone1.unlink()
    zone1.mkdir()
    res = cli(*args)
    assert "warning: new1.example: live state not read" in res.out


def test_a_bad_dkim_secret_fails_only_its_domain(cli, tmp_path):
    keystore = cli.home / "keystore" / "tenants" / "acme"
    secret = keystore / "domains" / "new2.example" / "dkim" / "pm202611.secret"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"not a Fernet token")
    args = ("domains", "import", _csv(tmp_path, GOOD), "-f", QUICKSTART, "--apply", "--yes")
    res = cli(*args, "-o", "json")
    assert res.code == 6, res.err
    statuses = {r["domain"]: r["status"] for r in res.json()["results"]}
    assert statuses["new2.example"] == "failed"
    assert statuses["new1.example"] == statuses["new3.example"] == "applied"
