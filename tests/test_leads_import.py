"""`leads import`: validation with line numbers, merging, custom fields, suppression, streaming."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from penguinctl.campaigns import leads as leads_mod
from penguinctl.campaigns.leads import column_name, import_leads
from penguinctl.campaigns.models import Lead
from penguinctl.campaigns.suppression import add, add_hash, email_hash
from penguinctl.state.db import session_scope
from tests.campaigndata import stored_campaign


def rows(session, campaign):
    t = Lead.__table__
    return {r.email: r for r in session.execute(sa.select(t).where(t.c.campaign_id == campaign.id))}


def test_import_validates_merges_and_keeps_fields(migrated_engine, tmp_path):
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "\ufeffEmail,First Name,lastName,Organization,TZ,Job Title\n"
        "Ann@Example.com,Ann,Lee,Acme,Europe/Paris,CTO\n"
        "bad@,Bob,,X,,\n"
        "\n"
        "carl@example.com,Carl,,,Mars/Base,\n"
        "ann@example.COM,,,Acme Two,,\n"
        '"dora@example.com","Dora","","Dora, Inc",,"Head of ""Ops"""\n'
        "eve@bücher.example,Eve,,,,\n"
        "ä@example.com,,,,,\n"
        "frank@example.com,Frank\n",
        encoding="utf-8",
    )
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        result = import_leads(s, campaign, csv_file, shown="leads.csv")
        stored = rows(s, campaign)
    messages = [str(i) for i in result.issues]
    assert any(m.startswith("leads.csv:3:1: line 3: email 'bad@'") for m in messages), messages
    assert any(m.startswith("leads.csv:5:1:") and "Mars/Base" in m for m in messages)
    assert any(m.startswith("leads.csv:9:1:") for m in messages)  # non-ASCII local part
    assert any(m.startswith("leads.csv:10:1:") and "2 fields" in m for m in messages)
    assert result.rejected == 4 and result.created == 3 and result.merged == 1
    assert set(stored) == {"ann@example.com", "dora@example.com", "eve@xn--bcher-kva.example"}
    ann = stored["ann@example.com"]
    assert (ann.first_name, ann.last_name, ann.company, ann.timezone) == (
        "Ann",
        "Lee",
        "Acme Two",
        "Europe/Paris",
    )
    assert ann.fields == {"job_title": "CTO"}
    assert ann.status == "active" and ann.next_step == 0
    assert stored["dora@example.com"].company == "Dora, Inc"
    assert stored["dora@example.com"].fields == {"job_title": 'Head of "Ops"'}


def test_reimport_merges_without_resetting_progress(migrated_engine, tmp_path):
    first = tmp_path / "a.csv"
    first.write_text("email,first_name,industry\nann@example.com,Ann,SaaS\n")
    second = tmp_path / "b.csv"
    second.write_text("email,company,city\nann@example.com,Acme,Paris\nzed@example.com,Z,\n")
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        import_leads(s, campaign, first)
        s.execute(sa.update(Lead.__table__).values(next_step=1, status="active"))
        result = import_leads(s, campaign, second)
        stored = rows(s, campaign)
    assert result.merged == 1 and result.created == 1
    ann = stored["ann@example.com"]
    assert ann.first_name == "Ann" and ann.company == "Acme" and ann.next_step == 1
    assert ann.fields == {"industry": "SaaS", "city": "Paris"}


def test_required_variables_and_header_problems(migrated_engine, tmp_path):
    steps = [{"subject": "Hi {{ first_name }}", "body": "{{ industry }}"}]
    no_column = tmp_path / "a.csv"
    no_column.write_text("email,first_name\nann@example.com,Ann\n")
    blank = tmp_path / "b.csv"
    blank.write_text("email,first_name,industry\nann@example.com,,SaaS\nbo@example.com,Bo,IT\n")
    bad_header = tmp_path / "c.csv"
    bad_header.write_text("mail_to,First Name,first_name,sender_name,2nd\nx@example.com,a,b,c,d\n")
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s, steps=steps, fields=["industry"])
        r1 = import_leads(s, campaign, no_column, shown="a.csv")
        r2 = import_leads(s, campaign, blank, shown="b.csv")
        r3 = import_leads(s, campaign, bad_header, shown="c.csv")
    assert r1.created == 0 and "industry without a default" in str(r1.issues[0])
    assert r2.created == 1 and r2.rejected == 1
    assert "b.csv:2:1: line 2 (ann@example.com): first_name is blank" in str(r2.issues[0])
    text = " ".join(str(i) for i in r3.issues)
    assert "no 'email' column" in text and "appears twice" in text
    assert "built-in" in text and "must start with a letter" in text


def test_suppressed_and_forgotten(migrated_engine, tmp_path):
    csv_file = tmp_path / "l.csv"
    csv_file.write_text("email\nann@example.com\nbob@example.com\ncat@example.com\n")
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        add(s, "ANN@example.com", "tenant", "acme", "manual")
        add_hash(s, email_hash("bob@example.com"), "global", "", "forgotten")
        add(s, "cat@example.com", "tenant", "other", "manual")  # another tenant: no effect
        result = import_leads(s, campaign, csv_file)
        stored = rows(s, campaign)
    assert result.suppressed == 1 and result.skipped_forgotten == 1 and result.created == 1
    assert stored["ann@example.com"].status == "suppressed"
    assert "bob@example.com" not in stored
    assert stored["cat@example.com"].status == "active"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xff\xfee\x00m\x00", "UTF-16"),
        (b"email\nann@example.com\n\xff\xfe\n", "not valid UTF-8"),
        (b"email\nann@\x00example.com\n", "NUL"),
        (b'email,first_name\n"ann@example.com,Ann\n', "malformed CSV"),
        (b"", "empty"),
    ],
)
def test_hostile_files(migrated_engine, tmp_path, data, needle):
    path = tmp_path / "h.csv"
    path.write_bytes(data)
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        result = import_leads(s, campaign, path)
    assert any(needle in str(i) for i in result.issues), result.issues
    assert not result.complete


def test_limits(migrated_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(leads_mod, "MAX_CELL_CHARS", 20)
    monkeypatch.setattr(leads_mod, "MAX_ROWS", 3)
    path = tmp_path / "l.csv"
    path.write_text(
        "email,note\n"
        + "".join(f"u{i}@example.com,{'x' * (30 if i == 1 else 3)}\n" for i in range(5))
    )
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        result = import_leads(s, campaign, path)
    text = " ".join(str(i) for i in result.issues)
    assert "the limit is 20" in text and "more than 3 rows" in text
    assert result.created == 2


def test_streams_in_batches(migrated_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(leads_mod, "BATCH", 100)
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write("email,first_name,n\n")
        for i in range(2500):
            f.write(f"user{i % 2000}@example.com,U{i},{i}\n")
    seen: list[int] = []
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        result = import_leads(s, campaign, path, progress=seen.append)
        count = s.execute(sa.select(sa.func.count()).select_from(Lead.__table__)).scalar_one()
        last = rows(s, campaign)["user5@example.com"]
    assert count == 2000 and result.created == 2000 and result.merged == 500
    assert len(seen) >= 20 and seen == sorted(seen)
    assert last.fields == {"n": "2005"} and last.first_name == "U2005"


def test_column_names():
    assert column_name("First Name") == "first_name"
    assert column_name("firstName") == "first_name"
    assert column_name(" E-Mail ") == "email"
    assert column_name("Company Name") == "company"
    assert column_name("Job Title") == "job_title"


def test_control_characters_are_refused_at_the_character(migrated_engine, tmp_path):
    """A line break in a quoted name would reach the To header (issue 16 §2.3): every cell
    with a control character is refused, located at that character."""
    csv_file = tmp_path / "leads.csv"
    csv_file.write_bytes(
        b"email,first_name,company\r\n"
        b"ok@example.com,Ann,Acme\r\n"
        b'"crlf@example.com","Ann\r\nBcc: victim@else.example",Acme\r\n'
        b"tab@example.com,Bo\tb,Acme\r\n"
        b"esc@example.com,Ok,Ac\x1bme\r\n"
        b"sep@example.com,Ok,Ac\xe2\x80\xa8me\r\n"  # U+2028, a line separator
        b'lf@example.com,"Line\nbreak",x\r\n'
        b"fine@example.com,Zo\xc3\xab,\xc3\x91o\xc3\xb1o \xe2\x80\x94 Co\r\n"
    )
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        result = import_leads(s, campaign, csv_file, shown="leads.csv")
        stored = rows(s, campaign)
    messages = [str(i) for i in result.issues]
    assert result.rejected == 5 and result.created == 2, messages
    assert set(stored) == {"ok@example.com", "fine@example.com"}
    expected = [
        ("leads.csv:3:24:", "first_name", "U+000D (carriage return)"),
        ("leads.csv:5:19:", "first_name", "U+0009 (tab)"),
        ("leads.csv:6:22:", "company", "U+001B (escape)"),
        ("leads.csv:7:22:", "company", "U+2028 (line separator)"),
        ("leads.csv:8:21:", "first_name", "U+000A (line feed)"),
    ]
    assert len(messages) == len(expected), messages
    for message, (where, column, char) in zip(messages, expected, strict=True):
        assert message.startswith(where) and column in message and char in message, message
    assert "victim" not in " ".join(messages)  # the value is never repeated
