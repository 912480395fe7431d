"""Stats: counts per step and variant, rates, two-proportion z-test."""

from __future__ import annotations

import math

import pytest

from penguinctl.campaigns.stats import campaign_stats, normal_cdf, two_proportion_test
from penguinctl.state.db import session_scope
from tests.campaigndata import add_lead, add_send, stored_campaign


def test_normal_cdf_and_z_test():
    assert normal_cdf(0) == pytest.approx(0.5)
    assert normal_cdf(1.959964) == pytest.approx(0.975, abs=1e-6)
    # textbook example: 45/500 vs 30/500 -> z = 1.786..., p = 0.0741
    t = two_proportion_test(45, 500, 30, 500)
    p = 75 / 1000
    z = (0.09 - 0.06) / math.sqrt(p * (1 - p) * (2 / 500))
    assert t.z == pytest.approx(z, abs=1e-5)
    assert t.p_value == pytest.approx(2 * (1 - normal_cdf(z)), abs=1e-5)
    assert t.confidence == pytest.approx(1 - t.p_value)
    assert two_proportion_test(0, 0, 1, 10).confidence == 0
    assert two_proportion_test(0, 10, 0, 10).z == 0
    assert two_proportion_test(30, 100, 30, 100).confidence == 0
    strong = two_proportion_test(100, 400, 40, 400)
    assert strong.confidence > 0.999 and strong.z > 0


def test_campaign_counts_and_ab(migrated_engine):
    with session_scope(migrated_engine) as s:
        campaign = stored_campaign(s)
        # variant A: 200 sent, 10 bounced, 40 replied; B: 200 sent, 4 bounced, 10 replied
        for variant, n, bounced, replied in (("A", 200, 10, 40), ("B", 200, 4, 10)):
            for i in range(n):
                status = (
                    "bounced" if i < bounced else "replied" if i < bounced + replied else "active"
                )
                lead = add_lead(s, campaign, f"{variant.lower()}{i}@example.com", status=status)
                add_send(s, campaign, lead, 0, variant)
                if variant == "A" and status == "active" and i < 60:
                    add_send(s, campaign, lead, 1, "A")  # follow-up
        one = add_lead(s, campaign, "unsub@example.com", status="unsubscribed")
        add_send(s, campaign, one, 0, "B")
        add_send(s, campaign, one, 1, "A")  # unsubscribed after the follow-up
        amb = add_lead(s, campaign, "amb@example.com", status="active")
        add_send(s, campaign, amb, 0, "A", status="ambiguous")
        stats = campaign_stats(s, campaign)
    data = stats.as_dict()
    rows = {(r["step"], r["variant"]): r for r in data["steps"]}
    a, b, f = rows[(1, "A")], rows[(1, "B")], rows[(2, "A")]
    assert (a["sent"], a["bounced"], a["replied"], a["ambiguous"]) == (200, 10, 40, 1)
    assert (b["sent"], b["bounced"], b["replied"], b["unsubscribed"]) == (201, 4, 10, 0)
    assert (f["sent"], f["unsubscribed"]) == (11, 1)
    assert a["bounce_rate"] == pytest.approx(10 / 200)
    assert a["reply_rate"] == pytest.approx(40 / 190, abs=1e-6)
    assert data["totals"]["sent"] == 412
    assert data["sends"] == {"sent": 412, "ambiguous": 1}
    assert data["leads"]["replied"] == 50
    [test] = data["ab_tests"]
    assert test["step"] == 1 and test["best"] == "A" and test["runner_up"] == "B"
    expected = two_proportion_test(40, 190, 10, 197)
    assert test["confidence"] == expected.confidence and test["confidence"] > 0.99
    assert test["winner"] == "A" and test["note"] is None
    csv_rows = stats.csv_rows()
    assert csv_rows[0]["step"] == 1 and "reply_rate" in csv_rows[0]
