"""Suppression list: scopes, hashing, import, unsubscribe tokens."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from penguinctl.campaigns import suppression as sup
from penguinctl.campaigns.message import InvalidToken, unsubscribe_token
from penguinctl.campaigns.models import Lead, Suppression
from penguinctl.errors import UsageError
from penguinctl.state.db import session_scope
from tests.campaigndata import add_lead, stored_campaign


def test_scopes(migrated_engine):
    with session_scope(migrated_engine) as s:
        assert sup.add(s, " Ann@Example.com ", "global", "", "complaint")
        assert not sup.add(s, "ann@example.com", "global", "", "again")  # same entry
        sup.add(s, "bob@example.com", "tenant", "acme", "manual")
        sup.add(s, "cat@example.com", "campaign", "acme/q4", "manual")
    with session_scope(migrated_engine) as s:
        assert sup.is_suppressed(s, "ANN@example.com", "any", None)
        assert sup.is_suppressed(s, "bob@example.com", "acme", "acme/q1")
        assert not sup.is_suppressed(s, "bob@example.com", "other", "other/q4")
        assert sup.is_suppressed(s, "cat@example.com", "acme", "acme/q4")
        assert not sup.is_suppressed(s, "cat@example.com", "acme", "acme/q1")
        assert not sup.is_suppressed(s, "dan@example.com", "acme", "acme/q4")
        hashes = [sup.email_hash(e) for e in ("ann@example.com", "cat@example.com", "x@y.z")]
        assert sup.suppressed_hashes(s, hashes, "acme", "acme/q4") == set(hashes[:2])
        rows = s.execute(sa.select(Suppression.__table__)).all()
        assert all(len(r.email_hash) == 64 for r in rows)
        assert {r.email for r in rows} == {"ann@example.com", "bob@example.com", "cat@example.com"}
        entries = sup.check(s, "cat@example.com")
        assert [(e.scope, e.scope_ref) for e in entries] == [("campaign", "acme/q4")]
        assert sup.check(s, "cat@example.com", "acme", "q1") == []


def test_scope_options():
    assert sup.scope_of(None, None) == ("global", "")
    assert sup.scope_of("acme", None) == ("tenant", "acme")
    assert sup.scope_of("acme", "q4") == ("campaign", "acme/q4")
    with pytest.raises(UsageError):
        sup.scope_of(None, "q4")


def test_import_file(migrated_engine, tmp_path):
    csv_file = tmp_path / "s.csv"
    csv_file.write_text(
        "Email,Reason,Date\nann@example.com,complaint,2026-01-01\nnot-an-address,,\n"
        "ann@example.com,dup,\nbob@example.com,,\n"
    )
    plain = tmp_path / "list.txt"
    plain.write_text("cat@example.com\nbob@example.com\n\nbroken@\n")
    with session_scope(migrated_engine) as s:
        r1 = sup.import_file(s, csv_file, "tenant", "acme", shown="s.csv")
        r2 = sup.import_file(s, plain, "tenant", "acme", shown="list.txt")
        reasons = dict(s.execute(sa.select(Suppression.email, Suppression.reason)).all())
    assert (r1.added, r1.existing) == (2, 1)
    assert [str(i.location) for i in r1.issues] == ["s.csv:3:1"]
    assert (r2.added, r2.existing) == (1, 1)
    assert [str(i.location) for i in r2.issues] == ["list.txt:4:1"]
    assert reasons == {
        "ann@example.com": "complaint",
        "bob@example.com": "import",
        "cat@example.com": "import",
    }


def test_unsubscribe_token(migrated_engine):
    secret = b"s" * 32
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        lead = add_lead(s, campaign, "ann@example.com", status="active")
        token = unsubscribe_token(secret, campaign.id, lead.id)
    with session_scope(migrated_engine) as s:
        sup.apply_unsubscribe(s, token, secret)
        sup.apply_unsubscribe(s, token, secret)  # idempotent
    with session_scope(migrated_engine) as s:
        assert s.get(Lead, lead.id).status == "unsubscribed"
        assert sup.is_suppressed(s, "ann@example.com", "acme", "acme/other")
        with pytest.raises(InvalidToken):
            sup.apply_unsubscribe(s, token, b"x" * 32)
