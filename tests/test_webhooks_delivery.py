"""Webhook delivery against a real receiver process that verifies every request with the
``standardwebhooks`` library, on SQLite and PostgreSQL, the product clock fast-forwarded through
a clock file the receiver shares: 500s then 200, an hour-long outage, the retry schedule,
tenant walls, secret rotation with both signatures, disabling a dead endpoint."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from campaignkit import keystore
from eventkit import Receiver, events
from fakes.state_rows import record_resources

from penguinctl import clock
from penguinctl.events.outbox import emit
from penguinctl.events.relay import relay
from penguinctl.webhooks import endpoints, schedule
from penguinctl.webhooks.delivery import AT, DL, Deliverer

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class World:
    def __init__(self, tmp_path, state_url) -> None:
        from penguinctl.state.db import make_engine, migrate

        record_resources(state_url, [("tenant", t, t, {}) for t in ("acme", "beta")])
        self.engine = make_engine(state_url)
        migrate(self.engine)
        self.tmp = tmp_path
        self.secrets = keystore(tmp_path)
        self.clock_file = tmp_path / "clock"
        clock.FileClock.write(self.clock_file, T0)
        self.clock = clock.FileClock(self.clock_file)
        self.previous = clock.install(self.clock)

    def now(self) -> datetime:
        return self.clock.now()

    def set(self, instant: datetime) -> None:
        clock.FileClock.write(self.clock_file, instant)

    def add(self, url: str, tenant: str = "", **kw) -> tuple[str, str]:
        ep, secret = endpoints.add(
            self.engine, self.secrets, url, tenant=tenant, allow_private=True, actor="t", **kw
        )
        return ep.id, secret

    def emit(self, type_: str, tenant: str, n: int) -> list[str]:
        ids = []
        with self.engine.begin() as conn:
            for i in range(n):
                ids.append(
                    emit(
                        conn,
                        type_,
                        tenant=tenant,
                        subject=f"campaign/c{i}",
                        payload={"campaign": f"c{i}"},
                    )
                )
        return ids

    def deliverer(self, **kw) -> Deliverer:
        kw.setdefault("concurrency", 1)
        return Deliverer(self.engine, self.secrets, clock=self.clock, owner="test", **kw)

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            ep = endpoints.E
            due = conn.execute(
                sa.select(sa.func.min(DL.c.next_attempt_at))
                .join(ep, ep.c.id == DL.c.endpoint_id)
                .where(DL.c.status == "pending", ep.c.status == "active")
            ).scalar()
        return due.replace(tzinfo=UTC) if due is not None and due.tzinfo is None else due

    def drive(self, deliverer: Deliverer, until: datetime) -> None:
        """Pass after pass, jumping the clock to the next due time, up to ``until``."""
        for _ in range(500):
            relay(self.engine, now=self.now())
            deliverer.deliver_due()
            due = self.next_due()
            if due is None or due > until:
                return
            self.set(max(due, self.now()))
        raise AssertionError("delivery did not settle")

    def attempts(self, delivery_id: int) -> list[datetime]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(AT.c.started_at).where(AT.c.delivery_id == delivery_id).order_by(AT.c.id)
            ).scalars()
            return [r.replace(tzinfo=UTC) if r.tzinfo is None else r for r in rows]

    def close(self) -> None:
        clock.install(self.previous)
        self.engine.dispose()


@pytest.fixture
def world(tmp_path, state_url):
    w = World(tmp_path, state_url)
    yield w
    w.close()


def test_at_least_once_through_500s_and_an_hour_down(world) -> None:
    acme_url, beta_url, all_url = "/acme", "/beta", "/all"
    rx = Receiver(world.tmp, world.clock_file, {})
    acme, acme_secret = world.add(rx.url(acme_url), "acme")
    beta, beta_secret = world.add(rx.url(beta_url), "beta")
    platform, platform_secret = world.add(rx.url(all_url), event_types=["campaign.*"])
    rx.config.write_text(
        rx.config.read_text().replace(
            '"paths": {}',
            '"paths": {'
            f'"{acme_url}": {{"secrets": ["{acme_secret}"], "fail_first": 10}}, '
            f'"{beta_url}": {{"secrets": ["{beta_secret}"]}}, '
            f'"{all_url}": {{"secrets": ["{platform_secret}"]}}}}',
        )
    )
    deliverer = world.deliverer()
    try:
        with rx:
            acme_ids = world.emit("campaign.completed", "acme", 10)
            beta_ids = world.emit("campaign.completed", "beta", 3)
            world.drive(deliverer, T0 + timedelta(minutes=1))
            first = rx.requests()
            # every acme event: a 500 first, then 200 after ~5 s (retry 1 of the schedule)
            acme_got = [r for r in first if r["path"] == acme_url]
            assert sorted({r["id"] for r in acme_got}) == sorted(acme_ids)
            assert [r["status"] for r in acme_got].count(500) == 10
            assert all(r["verified"] for r in first), [r for r in first if not r["verified"]]
            # tenant walls: beta's endpoint saw beta's events only, the platform's saw all
            assert {r["id"] for r in first if r["path"] == beta_url} == set(beta_ids)
            assert {r["id"] for r in first if r["path"] == all_url} == set(acme_ids + beta_ids)
            assert all(r["tenant"] == "acme" for r in acme_got)

        # the receiver is down for an hour: three more events for acme
        down_at = world.now()
        late = world.emit("campaign.completed", "acme", 3)
        world.drive(deliverer, down_at + timedelta(hours=1))
        with rx:  # back up
            world.drive(deliverer, down_at + timedelta(hours=12))
            got = rx.requests()
    finally:
        deliverer.close()

    delivered = {(r["path"], r["id"]) for r in got if r["status"] == 200}
    for event_id in acme_ids + late:
        assert (acme_url, event_id) in delivered
        assert (all_url, event_id) in delivered
    assert all(r["verified"] and r["signatures"] == 1 for r in got)
    # duplicates only ever carry the same id: every id received is an event we emitted
    assert {r["id"] for r in got} <= set(acme_ids + beta_ids + late)

    with world.engine.connect() as conn:
        rows = conn.execute(sa.select(DL.c.id, DL.c.endpoint_id, DL.c.event_id, DL.c.status)).all()
    assert {r.status for r in rows} == {"succeeded"}
    # the first late delivery took the schedule while the receiver was down: attempts after
    # 5 s, 5 min, 30 min, then 2 h (the receiver came back at 1 h), each within the jitter
    (leader,) = [r.id for r in rows if r.endpoint_id == acme and r.event_id == late[0]]
    times = world.attempts(leader)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert len(gaps) == 4, gaps
    for gap, want in zip(gaps, schedule.DELAYS, strict=False):
        assert want.total_seconds() * 0.9 <= gap <= want.total_seconds() * 1.1, (gaps, want)
    # the other two waited with it (not counted as attempts) and went through on its success
    others = [r.id for r in rows if r.endpoint_id == acme and r.event_id in late[1:]]
    assert [len(world.attempts(i)) for i in others] == [1, 1]
    assert platform and beta


def test_rotation_signs_with_both_secrets_during_the_overlap(world) -> None:
    rx = Receiver(world.tmp, world.clock_file, {})
    ep, old = world.add(rx.url("/h"), "acme")
    new_ep, new = endpoints.rotate_secret(
        world.engine, world.secrets, ep, actor="t", overlap=timedelta(hours=1)
    )
    rx.config.write_text(
        rx.config.read_text().replace(
            '"paths": {}', f'"paths": {{"/h": {{"secrets": ["{old}", "{new}"]}}}}'
        )
    )
    deliverer = world.deliverer()
    try:
        with rx:
            world.emit("campaign.completed", "acme", 1)
            world.drive(deliverer, world.now())
            world.set(T0 + timedelta(hours=2))  # the overlap is over
            world.emit("campaign.completed", "acme", 1)
            world.drive(deliverer, world.now())
            got = rx.requests()
    finally:
        deliverer.close()
    assert [(r["status"], r["signatures"]) for r in got] == [(200, 2), (200, 1)]
    assert got[1]["verified_with"] == 1  # only the new secret signs after the overlap
    stored = world.secrets.get(endpoints.secret_path("acme", ep))
    assert stored["secret"].reveal() == new and new_ep.secret_rotated_at is not None


def test_an_endpoint_failing_for_days_is_disabled_with_an_event(world, caplog) -> None:
    rx = Receiver(world.tmp, world.clock_file, {})
    ep, secret = world.add(rx.url("/dead"), "acme")
    rx.config.write_text(
        rx.config.read_text().replace(
            '"paths": {}', f'"paths": {{"/dead": {{"secrets": ["{secret}"], "status": 503}}}}'
        )
    )
    deliverer = world.deliverer()
    caplog.set_level(logging.WARNING, logger="penguinctl.webhooks")
    try:
        with rx:
            for day in range(7):
                world.set(T0 + timedelta(days=day))
                world.emit("campaign.completed", "acme", 1)
                world.drive(deliverer, world.now() + timedelta(hours=23))
    finally:
        deliverer.close()
    got = endpoints.get(world.engine, ep)
    assert got.status == "disabled" and "failed for" in (got.disabled_reason or "")
    (disabled,) = events(world.engine, "webhook.endpoint.disabled")
    assert disabled["tenant"] == "acme" and disabled["data"]["endpoint"] == ep
    assert any("disabled" in r.getMessage() and ep in r.getMessage() for r in caplog.records)
    # disabled: new events are not queued for it
    with world.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).where(DL.c.endpoint_id == ep)).scalar()
    world.emit("campaign.completed", "acme", 1)
    relay(world.engine, now=world.now())
    with world.engine.connect() as conn:
        after = conn.execute(sa.select(sa.func.count()).where(DL.c.endpoint_id == ep)).scalar()
    assert before == after


def test_410_gone_disables_at_once_and_exhausted_deliveries_can_be_redelivered(world) -> None:
    from penguinctl.webhooks.deliveries import redeliver

    rx = Receiver(world.tmp, world.clock_file, {})
    ep, secret = world.add(rx.url("/gone"), "beta")
    rx.config.write_text(
        rx.config.read_text().replace(
            '"paths": {}', f'"paths": {{"/gone": {{"secrets": ["{secret}"], "status": 410}}}}'
        )
    )
    deliverer = world.deliverer()
    try:
        with rx:
            (event_id,) = world.emit("campaign.completed", "beta", 1)
            world.drive(deliverer, world.now())
            assert endpoints.get(world.engine, ep).status == "disabled"
            endpoints.set_status(world.engine, ep, "active", actor="t")
            with pytest.raises(Exception, match="no delivery"):
                redeliver(world.engine, event_id, actor="t", tenant="acme")  # not acme's
            assert redeliver(world.engine, event_id, actor="t", tenant="beta")
            deliverer.deliver_due()
            assert len(rx.requests()) == 2
    finally:
        deliverer.close()
