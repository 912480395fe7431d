"""The Domains page with 10,000 domains and a campaign page with 20,000 sends (both backends):
pages are cut on the server (50 rows, links to the next and previous page), search and the
"problems" filter run in the query (the counts are exact), the last page is reachable, and a
tenant key sees none of it. The timings are the benchmark's job (bench/dashboard.py)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from campaignkit import keystore
from dashkit import Dash, make_key, seed_scale
from webkit import LiveApp

pytestmark = pytest.mark.clock
ROW = re.compile(r'<th scope="row"><a href="/dashboard/domains/bulk/(dom\d{5}\.example)"')


@pytest.fixture
def big(tmp_path, state_url):
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(state_url)
    migrate(engine)
    seed_scale(engine, domains=10_000, sends=20_000)
    tokens = {"admin": make_key(engine, "", "readonly"), "other": make_key(engine, "acme", "owner")}
    with LiveApp(engine, keystore(tmp_path)) as live:
        yield live, tokens, engine
    engine.dispose()


def test_ten_thousand_domains_paged_on_the_server(big) -> None:
    from sqlmodel import Session, select

    live, tokens, engine = big
    dash = Dash(live.base)
    assert dash.login(tokens["admin"]).status_code == 303
    first = dash.get("/dashboard/domains")
    assert first.status_code == 200
    assert "10,000 domains; page 1 of 200." in first.text
    names = ROW.findall(first.text)
    assert names == [f"dom{i:05d}.example" for i in range(50)]
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    assert "1/10 lookups" in first.text and "p=quarantine" in first.text
    last = dash.get("/dashboard/domains?page_no=200")
    assert ROW.findall(last.text)[-1] == "dom09999.example" and 'rel="next"' not in last.text
    beyond = dash.get("/dashboard/domains?page_no=9999")  # clamped to the last page
    assert "page 200 of 200" in beyond.text
    found = dash.get("/dashboard/domains?q=dom0999")
    assert "10 domains; page 1 of 1." in found.text
    assert ROW.findall(found.text) == [f"dom0999{i}.example" for i in range(10)]
    problems = dash.get("/dashboard/domains?status=problems")
    assert "1,000 domains; page 1 of 20." in problems.text
    assert ROW.findall(problems.text)[:3] == [
        "dom00000.example",
        "dom00010.example",
        "dom00020.example",
    ]
    unchecked = dash.get("/dashboard/domains?status=unchecked")
    assert "0 domains" in unchecked.text
    page = dash.get("/dashboard/campaigns/bulk/big")
    assert page.status_code == 200
    assert "<dd>20,000</dd>" in page.text and "<dd>1,000</dd>" in page.text  # sent, replied
    assert "<td>Gmail</td><td>5,000</td>" in page.text
    assert 'aria-label="Sends per day: 20000 in total' in page.text
    # the A/B test as the CLI computes it (campaigns.stats), rendered
    from penguinctl.campaigns.models import Campaign
    from penguinctl.campaigns.stats import campaign_stats

    with Session(engine) as s:
        ab = campaign_stats(s, s.exec(select(Campaign)).one()).ab_tests[0]
    assert ab.winner == "A" and ab.confidence > 0.99
    row = f"<td>1</td><td>A</td><td>B</td><td>{ab.best_rate * 100:.1f}% vs 0.0%</td>"
    assert row in page.text
    assert (
        f"<td>{ab.confidence * 100:.1f}% (z {ab.z:.2f}, p {ab.p_value:.4f})</td><td>A" in page.text
    )

    other = Dash(live.base)
    assert other.login(tokens["other"]).status_code == 303
    assert "0 domains" in other.get("/dashboard/domains").text
    assert other.get("/dashboard/campaigns/bulk/big").status_code == 404


def test_migration_0012_matches_the_models(tmp_path) -> None:
    """The Domains page's index, as migration 0012 creates it and as ResourceRow declares it."""
    from sqlmodel import SQLModel

    from penguinctl.state.db import make_engine, migrate

    migrated = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    migrate(migrated)
    declared = sa.create_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    SQLModel.metadata.create_all(declared, tables=[SQLModel.metadata.tables["resources"]])

    def indexes(engine) -> list:
        return sorted(
            (i["name"], tuple(i["column_names"]))
            for i in sa.inspect(engine).get_indexes("resources")
        )

    assert ("ix_resources_kind_name", ("kind", "name", "tenant")) in indexes(migrated)
    assert indexes(migrated) == indexes(declared)
    sends = {i["name"] for i in sa.inspect(migrated).get_indexes("campaign_sends")}
    assert "ix_sends_campaign" in sends
    migrated.dispose()
    declared.dispose()
