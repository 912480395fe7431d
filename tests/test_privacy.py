"""`leads export` / `leads forget`: everything held about a person, and erasing it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from penguinctl.campaigns.leads import import_leads
from penguinctl.campaigns.models import CampaignSend, Lead, Suppression
from penguinctl.campaigns.privacy import export_person, forget_person
from penguinctl.campaigns.suppression import add, is_suppressed
from penguinctl.state.db import session_scope
from tests.campaigndata import add_lead, add_send, stored_campaign


def test_export_and_forget(migrated_engine, tmp_path):
    with session_scope(migrated_engine) as s:
        c1 = stored_campaign(s, tenant="acme", name="q4")
        c2 = stored_campaign(s, tenant="beta", name="q1")
        l1 = add_lead(
            s,
            c1,
            "ann@example.com",
            first_name="Ann",
            company="Acme",
            timezone="Europe/Paris",
            fields={"city": "Paris"},
        )
        l2 = add_lead(s, c2, "ann@example.com", first_name="Ann")
        other = add_lead(s, c1, "bob@example.com", first_name="Bob")
        add_send(s, c1, l1, 0)
        add_send(s, c2, l2, 0)
        add_send(s, c2, l2, 1, status="ambiguous")
        add_send(s, c1, other, 0)
        add(s, "ann@example.com", "tenant", "acme", "manual")
        ids = (l1.id, l2.id)
    with session_scope(migrated_engine) as s:
        data = export_person(s, "ANN@example.com")
    assert {(x["tenant"], x["campaign"]) for x in data["leads"]} == {("acme", "q4"), ("beta", "q1")}
    assert data["leads"][0]["fields"] == {"city": "Paris"}
    assert len(data["sends"]) == 3 and all(
        x["recipient"] == "ann@example.com" for x in data["sends"]
    )
    assert data["suppressions"][0]["scope"] == "tenant"

    with session_scope(migrated_engine) as s:
        result = forget_person(s, "ann@example.com")
    assert (result.leads, result.sends, result.suppressions, result.suppressed) == (2, 3, 1, True)
    with session_scope(migrated_engine) as s:
        leads = {r.id: r for r in s.execute(sa.select(Lead.__table__))}
        for lead_id in ids:
            r = leads[lead_id]
            assert r.email == f"forgotten:{lead_id}" and r.status == "forgotten"
            assert (r.first_name, r.company, r.timezone, r.fields) == (None, None, None, {})
        assert leads[other.id].first_name == "Bob"
        sends = s.execute(sa.select(CampaignSend.__table__)).all()
        assert [x.recipient for x in sends if x.lead_id in ids] == [None, None, None]
        assert {x.lead_id for x in sends} == {*ids, other.id}  # the ledger keeps its keys
        supp = s.execute(sa.select(Suppression.__table__)).all()
        assert all(x.email is None for x in supp)
        assert {(x.scope, x.reason) for x in supp} == {
            ("tenant", "manual"),
            ("global", "forgotten"),
        }
        assert is_suppressed(s, "Ann@Example.com", "gamma", None)
        assert export_person(s, "ann@example.com")["leads"] == []
        # the ledger still refuses a second send of the same (lead, step)
        with pytest.raises(sa.exc.IntegrityError), s.begin_nested():
            add_send(s, stored_campaign(s, name="x"), leads[ids[0]], 0)
    # a later import does not store the forgotten person again
    csv_file = tmp_path / "l.csv"
    csv_file.write_text("email,first_name\nann@example.com,Ann\ncat@example.com,Cat\n")
    with session_scope(migrated_engine) as s:
        from penguinctl.campaigns.models import Campaign

        campaign = s.get(Campaign, c1.id)
        result = import_leads(s, campaign, csv_file)
        emails = set(s.execute(sa.select(Lead.email)).scalars())
    assert result.skipped_forgotten == 1 and "ann@example.com" not in emails
    # forgetting again is harmless
    with session_scope(migrated_engine) as s:
        again = forget_person(s, "ann@example.com")
    assert (again.leads, again.suppressed) == (0, False)
