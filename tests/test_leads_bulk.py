"""`leads import` at scale (issue 24 §3): the fast paths give the very verdicts of the full ones,
the block reader parses what a line reader parses, and the bulk writers merge like row by row."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from penguinctl.campaigns import csvrows, lead_writer
from penguinctl.campaigns import leads as leads_mod
from penguinctl.campaigns.csvstream import CsvStream
from penguinctl.campaigns.leads import import_leads
from penguinctl.campaigns.models import Lead
from penguinctl.state.db import session_scope
from tests.campaigndata import stored_campaign

ADDRESSES = [
    "ann@example.com",
    "Ann.Lee+tag@Example.COM",
    "x@xn--bcher-kva.example",
    "eve@bücher.example",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@b",
    "a@localhost",
    "a@example.local",
    "a@example.test",
    "a@example.invalid",
    "a@123.456",
    "a@-bad.example",
    "a@bad-.example",
    "a@exa_mple.com",
    "a@[127.0.0.1]",
    '"quoted"@example.com',
    "ä@example.com",
    "a b@example.com",
    "a@example.com.",
    "a@" + "x" * 64 + ".example",
    "a@" + ".".join(["abcdefghi" * 7] * 4) + ".com",
    "l" * 64 + "@" + "d" * 60 + "." + "e" * 60 + "." + "f" * 60 + ".com",
    "l" * 80 + "@example.com",
    "Postmaster@Example.com",
    "a@EXAMPLE.XN--P1AI",
    "a@xn--p1ai",
    "!#$%&'*+-/=?^_`{|}~@example.org",
    "a@example..com",
    "@example.com",
    "a@",
    "a@b@example.com",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_fast_address_gives_email_validators_verdict(address: str) -> None:
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
        expected: str | None = (result.ascii_email or result.normalized).lower()
    except EmailNotValidError:
        expected = None
    fast = csvrows.fast_address(address)
    if fast is not None:  # the fast path only ever says "valid", and then the same address
        assert fast == expected
    normalised, error = csvrows.check_address(address)
    assert (normalised if error is None else None) == expected


def _records(data: bytes, block: int) -> list[tuple[int, list[str]]]:
    stream = CsvStream(io.BytesIO(data), block=block)
    return list(csvrows.iter_records(None, "f.csv", [], reader=stream.reader))


def _line_records(data: bytes) -> list[tuple[int, list[str]]]:
    handle = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    return list(csvrows.iter_records(handle, "f.csv", []))


@pytest.mark.parametrize("block", [1, 3, 7, 64, 1 << 20])
def test_block_reader_parses_like_the_line_reader(block: int) -> None:
    data = (
        "\ufeffemail,note\r\n"
        'a@x.example,"two\nlines"\r\n'
        "b@x.example,plain\r"
        "c@x.example,\u2028odd separator\n"
        '\n"d@x.example","quote "" inside"\n'
        "e@x.example,é ü 漢字\n"
        "f@x.example,last without newline"
    ).encode()
    assert _records(data, block) == _line_records(data)


@pytest.mark.parametrize("block", [5, 1 << 20])
def test_block_reader_stops_at_bad_bytes_after_the_rows_before(block: int) -> None:
    issues: list = []
    data = b"email\na@x.example\nb@x.example\nbad\xff@x.example\nc@x.example\n"
    stream = CsvStream(io.BytesIO(data), block=block)
    got = [r for _, r in csvrows.iter_records(None, "f.csv", issues, reader=stream.reader)]
    assert got == [["email"], ["a@x.example"], ["b@x.example"]]
    assert "f.csv:4:1" in str(issues[0]) and "0xff" in str(issues[0])
    issues = []
    stream = CsvStream(io.BytesIO(b"email\na@x.example\nb@\x00x\nc@x.example\n"), block=block)
    got = [r for _, r in csvrows.iter_records(None, "f.csv", issues, reader=stream.reader)]
    assert got == [["email"], ["a@x.example"]] and "NUL" in str(issues[0])


def test_raw_lines_of_a_record_are_kept() -> None:
    stream = CsvStream(io.BytesIO(b'h\n"a\nb"\nc\n'), block=4)
    reader = stream.reader
    assert next(reader) == ["h"]
    assert next(reader) == ["a\nb"]
    assert stream.raw(2, reader.line_num) == ['"a\n', 'b"\n']


def _stored(engine, campaign_id: int) -> dict[str, tuple]:
    t = Lead.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.email, t.c.first_name, t.c.company, t.c.fields, t.c.status).where(
                t.c.campaign_id == campaign_id
            )
        ).all()
    return {r.email: (r.first_name, r.company, r.fields, r.status) for r in rows}


def test_bulk_merges_like_row_by_row_across_chunks(migrated_engine, tmp_path, monkeypatch):
    """Duplicates within the file and against stored leads, across batches, PostgreSQL's
    held-back rows and staging chunks: the same leads as merging one row at a time."""
    monkeypatch.setattr(leads_mod, "BATCH", 7)
    monkeypatch.setattr(lead_writer, "CHUNK", 11)
    monkeypatch.setattr(lead_writer, "HELD_BACK", 5)
    first = tmp_path / "a.csv"
    first.write_text(
        "email,first_name,k0\n" + "".join(f"u{i}@x.example,F{i},{i}\n" for i in range(30))
    )
    second = tmp_path / "b.csv"
    lines = ["email,company,k1,k0"]
    expected: dict[str, dict] = {}
    for i in range(30):
        expected[f"u{i}@x.example"] = {"first": f"F{i}", "company": None, "fields": {"k0": str(i)}}
    for n in range(90):  # every address several times, some new ones
        i = (n * 7) % 45
        company = f"C{n}" if n % 3 else ""
        lines.append(f"u{i}@x.example,{company},v{n},")
        lead = expected.setdefault(
            f"u{i}@x.example", {"first": None, "company": None, "fields": {}}
        )
        if company:
            lead["company"] = company
        lead["fields"]["k1"] = f"v{n}"
    second.write_text("\n".join(lines) + "\n")
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        one = import_leads(s, campaign, first)
        two = import_leads(s, campaign, second)
        cid = campaign.id
    assert (one.created, one.merged) == (30, 0)
    assert two.created == 15 and two.merged == 75 and two.rows == 90
    stored = _stored(migrated_engine, cid)
    assert set(stored) == set(expected)
    for email, want in expected.items():
        first_name, company, fields, status = stored[email]
        assert (first_name, company, fields, status) == (
            want["first"],
            want["company"],
            want["fields"],
            "active",
        ), email


def test_backslashes_and_quotes_survive_bulk_writes(migrated_engine, tmp_path):
    path = tmp_path / "b.csv"
    path.write_text(
        'email,first_name,company,note\na@x.example,Ann\\Lee,"Q ""x"" \\N",c:\\dir\\n\n'
    )
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        result = import_leads(s, campaign, path)
        cid = campaign.id
    assert result.created == 1, result.issues
    ((email, (first, company, fields, _)),) = _stored(migrated_engine, cid).items()
    assert email == "a@x.example"
    assert (first, company, fields) == ("Ann\\Lee", 'Q "x" \\N', {"note": "c:\\dir\\n"})


def test_small_statements_and_copies_store_the_same_leads(migrated_engine, tmp_path, monkeypatch):
    """SQLite's multi-row INSERT split across statements, PostgreSQL's COPY ended every few
    rows, a suppression screened in the writer thread: the same leads and counts."""
    from penguinctl.campaigns.suppression import add

    monkeypatch.setattr(leads_mod, "BATCH", 10)
    monkeypatch.setattr(lead_writer.SqliteWriter, "PER_STATEMENT", 3)
    monkeypatch.setattr(lead_writer, "COPY_ROWS", 5)
    path = tmp_path / "l.csv"
    lines = ["email,first_name,k"]
    for n in range(60):
        lines.append(f"u{n % 40}@x.example,F{n},{n}")
    path.write_text("\n".join(lines) + "\n")
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        add(s, "u7@x.example", "tenant", "acme", "manual")
        result = import_leads(s, campaign, path)
        cid = campaign.id
    assert (result.created, result.suppressed, result.merged, result.rejected) == (39, 1, 20, 0)
    stored = _stored(migrated_engine, cid)
    assert len(stored) == 40
    assert stored["u7@x.example"] == ("F47", None, {"k": "47"}, "suppressed")
    assert stored["u39@x.example"] == ("F39", None, {"k": "39"}, "active")
    assert stored["u0@x.example"] == ("F40", None, {"k": "40"}, "active")


def test_a_writer_error_reaches_the_caller(migrated_engine, tmp_path, monkeypatch):
    """An error in the writer thread is raised by import_leads (the caller rolls back)."""
    monkeypatch.setattr(leads_mod, "BATCH", 5)
    calls = []

    def failing(self, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(self, rows)

    writer = "PostgresWriter" if migrated_engine.dialect.name == "postgresql" else "SqliteWriter"
    original = getattr(lead_writer, writer)._store
    monkeypatch.setattr(getattr(lead_writer, writer), "_store", failing)
    path = tmp_path / "l.csv"
    path.write_text("email\n" + "".join(f"u{i}@x.example\n" for i in range(40)))
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        cid = campaign.id
    with pytest.raises(RuntimeError, match="disk full"), session_scope(migrated_engine) as s:
        import_leads(s, s.get(type(campaign), cid), path)
    assert _stored(migrated_engine, cid) == {}
    assert calls[:2] == [5, 5]


@pytest.mark.parametrize("tail", [b"", b"zed@x.example,\xff\n", b'"open@x.example,Q\n'])
def test_any_batch_size_gives_the_same_results(migrated_engine, tmp_path, monkeypatch, tail):
    """At any batch size: the same leads, counts and issues at the same FILE:LINE:COL
    (multi-line quoted cells, blank lines, bad rows and a read error at the end shift the
    lines)."""
    body = [b"email,first_name,company,tz,note"]
    for n in range(40):
        body.append(f"u{n}@x.example,F{n},C{n % 3},Europe/Paris,{n}".encode())
        if n % 9 == 4:
            body.append(f'"m{n}@x.example","A\r\nB",,,'.encode())  # two lines, rejected
        if n % 11 == 5:
            body.append(b"")
        if n % 13 == 6:
            body.append(f"bad{n}@,X,,,".encode())
        if n % 17 == 7:
            body.append(f"z{n}@x.example,Z,,Mars/Base,".encode())
    path = tmp_path / "l.csv"
    path.write_bytes(b"\n".join(body) + b"\n" + tail)

    def run(batch: int) -> tuple:
        monkeypatch.setattr(leads_mod, "BATCH", batch)
        with session_scope(migrated_engine) as s:
            campaign = stored_campaign(s, name=f"c{batch}")
            result = import_leads(s, campaign, path, shown="l.csv")
            cid = campaign.id
        monkeypatch.undo()
        counts = (result.rows, result.created, result.rejected, result.complete)
        return counts, [str(i) for i in result.issues], _stored(migrated_engine, cid)

    expected = run(1)
    assert expected[0][2] > 5 and expected[1], expected[:2]
    for batch in (1000, 3, 7):
        assert run(batch) == expected, batch


def test_an_import_needs_its_campaign_stored(migrated_engine, tmp_path):
    """``leads`` has no foreign key to ``campaigns`` (migration 0016): the import, the only code
    that adds leads, is what keeps every lead's campaign stored. A campaign not found by name
    (the service) or not stored under its id (the writers) is refused before any row is
    written, and the campaign's row stays locked until the import ends (PostgreSQL: the row;
    SQLite: the database's write lock)."""
    from penguinctl import clock
    from penguinctl.campaigns.models import Campaign
    from penguinctl.errors import NotFound
    from penguinctl.services import leads
    from penguinctl.services.context import ServiceContext
    from penguinctl.state.models import utcnow

    assert Lead.__table__.foreign_keys == set()
    path = tmp_path / "l.csv"
    path.write_text("email\n" + "".join(f"u{i}@x.example\n" for i in range(30)))
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        cid, spec = campaign.id, campaign.spec
    ghost = Campaign(id=cid + 1000, tenant="acme", name="ghost", spec=spec, spec_hash="x")
    ctx = ServiceContext(
        db=migrated_engine,
        secrets=lambda: None,
        env={},
        actor="test",
        clock=clock.current(),
        settings_loader=lambda: None,
    )
    with pytest.raises(NotFound, match="no campaign 'ghost'"):
        leads.import_csv(ctx, "acme/ghost", path)
    with pytest.raises(NotFound, match="is not stored"), session_scope(migrated_engine) as s:
        import_leads(s, ghost, path)
    with pytest.raises(NotFound, match="is not stored"), session_scope(migrated_engine) as s:
        lead_writer.writer_for(s, cid + 1000, utcnow())
    with migrated_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Lead.__table__)).scalar() == 0
    assert leads.import_csv(ctx, "acme/q4", path).created == 30
    if migrated_engine.dialect.name == "sqlite":  # the write lock, from the check on
        import sqlite3

        with session_scope(migrated_engine) as s:
            writer = lead_writer.writer_for(s, cid, utcnow())
            other = sqlite3.connect(migrated_engine.url.database, timeout=0.05)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
            writer.finish()
        return
    campaigns = Campaign.__table__
    locking = sa.select(campaigns.c.id).where(campaigns.c.id == cid).with_for_update(nowait=True)
    with session_scope(migrated_engine) as s:
        writer = lead_writer.writer_for(s, cid, utcnow())
        with migrated_engine.connect() as other, pytest.raises(sa.exc.OperationalError):
            other.execute(locking)  # another transaction cannot lock (nor delete) it
        writer.finish()
    with migrated_engine.connect() as other:
        assert other.execute(locking).scalar() == cid  # the import's commit released it


def test_migration_0016_drops_the_leads_foreign_key_only(state_url):
    """Up from 0015 and back: ``fk_leads_campaign`` goes (and comes back), the rows stay, the
    other foreign keys to ``campaigns`` stay, and SQLite's rebuilt table keeps the partial
    ``ix_leads_due``."""
    from alembic import command

    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.tables import InboundEvent
    from penguinctl.state.db import _alembic_config, make_engine
    from penguinctl.state.models import utcnow

    engine = make_engine(state_url)

    def to(revision: str, down: bool = False) -> None:
        with engine.begin() as conn:
            (command.downgrade if down else command.upgrade)(_alembic_config(conn), revision)

    def foreign_keys(table: str) -> list[tuple]:
        found = sa.inspect(engine).get_foreign_keys(table)
        return [(f["name"], f["referred_table"], f["options"].get("ondelete")) for f in found]

    def shape() -> tuple:
        (due,) = [i for i in sa.inspect(engine).get_indexes("leads") if i["name"] == "ix_leads_due"]
        (where,) = [str(v) for k, v in due["dialect_options"].items() if k.endswith("_where")]
        with engine.connect() as conn:
            rows = conn.execute(sa.select(Lead.__table__.c.email).order_by("email")).scalars()
            return (due["column_names"], "status" in where and "active" in where, list(rows))

    try:
        to("0015")
        stamps = {"created_at": utcnow(), "updated_at": utcnow()}
        campaign = {"tenant": "acme", "name": "q4", "spec": {}, "spec_hash": "x", **stamps}
        with engine.begin() as conn:
            cid = conn.execute(
                sa.insert(Campaign.__table__).values(status="active", **campaign)
            ).inserted_primary_key[0]
            lead = {"campaign_id": cid, "fields": {}, "status": "active", **stamps}
            conn.execute(
                sa.insert(Lead.__table__),
                [{"email": e, **lead} for e in ("a@x.example", "b@x.example")],
            )
        before = shape()
        assert before == (["campaign_id", "next_send_at"], True, ["a@x.example", "b@x.example"])
        assert foreign_keys("leads") == [("fk_leads_campaign", "campaigns", "CASCADE")]
        to("0016")
        assert foreign_keys("leads") == []
        assert shape() == before
        assert foreign_keys("campaign_sends") == [("fk_sends_campaign", "campaigns", "CASCADE")]
        inbound = InboundEvent.__table__.name
        assert foreign_keys(inbound) == [("fk_inbound_campaign", "campaigns", "CASCADE")]
        to("0015", down=True)
        assert foreign_keys("leads") == [("fk_leads_campaign", "campaigns", "CASCADE")]
        assert shape() == before
        to("head")
        assert foreign_keys("leads") == []
    finally:
        engine.dispose()
