"""The transactional outbox on SQLite and PostgreSQL: an event exists exactly when the change
it reports was committed; the relay fans out once even when two run at once; the catalogue,
its schemas and the README table agree."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from eventkit import events

from penguinctl import clock
from penguinctl.events import catalogue
from penguinctl.events.outbox import emit
from penguinctl.events.relay import relay
from penguinctl.state import audit
from penguinctl.state.db import session_scope

README = Path(__file__).resolve().parent.parent / "README.md"


def _audit_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar()


def test_an_event_commits_and_rolls_back_with_its_change(migrated_engine) -> None:
    engine = migrated_engine
    # Core connection, committed: the change and its event
    with engine.begin() as conn:
        audit.record_many(conn, [{"actor": "t", "tenant": "acme", "action": "x",
                                  "resource": "r", "result": "ok"}])  # fmt: skip
        kept = emit(conn, "campaign.completed", tenant="acme", subject="campaign/q4",
                    payload={"campaign": "q4"})  # fmt: skip
    # a Session that fails after the change: neither the change nor its event remain
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        audit.record(session, actor="t", tenant="acme", action="y", resource="r", result="ok")
        emit(session, "campaign.completed", tenant="acme", subject="campaign/lost",
             payload={"campaign": "lost"})  # fmt: skip
        session.flush()
        raise RuntimeError("the change fails after its event was written")
    # a Core transaction rolled back
    with pytest.raises(RuntimeError), engine.begin() as conn:
        emit(conn, "campaign.completed", tenant="acme", subject="campaign/lost2",
             payload={"campaign": "lost2"})  # fmt: skip
        raise RuntimeError("rolled back")
    found = events(engine)
    assert [e["id"] for e in found] == [kept]
    assert found[0]["tenant"] == "acme" and found[0]["data"] == {"campaign": "q4"}
    assert _audit_count(engine) == 1
    assert re.fullmatch(r"evt_[0-9a-f]{24}", kept)


def test_event_time_is_the_product_clock(migrated_engine) -> None:
    from datetime import UTC, datetime

    fixed = clock.ManualClock(datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC))
    previous = clock.install(fixed)
    try:
        with migrated_engine.begin() as conn:
            emit(conn, "campaign.completed", tenant="", subject="s", payload={"campaign": "c"})
    finally:
        clock.install(previous)
    (e,) = events(migrated_engine)
    assert e["timestamp"].startswith("2031-02-03T04:05:06") and e["tenant"] is None


def test_bad_emits_are_programming_errors(migrated_engine) -> None:
    with migrated_engine.begin() as conn:
        with pytest.raises(ValueError, match="not an event type"):
            emit(conn, "nope.happened", tenant="", subject="s", payload={})
        with pytest.raises(ValueError, match="over"):
            emit(conn, "campaign.completed", tenant="", subject="s",
                 payload={"campaign": "x" * 10_000})  # fmt: skip


def test_payload_strings_pass_the_secret_masker(migrated_engine) -> None:
    from penguinctl.providers.secrets.base import SecretValue

    secret = SecretValue("hunter2-but-longer-value").reveal()
    with migrated_engine.begin() as conn:
        emit(conn, "backup.failed", tenant="acme", subject="server/mx1",
             payload={"server": "mx1", "operation": "backup", "run_id": 1,
                      "error": f"restic: wrong password {secret}"})  # fmt: skip
    (e,) = events(migrated_engine)
    assert secret not in str(e) and "******" in e["data"]["error"]


def test_two_relays_at_once_fan_out_each_event_once(migrated_engine, state_url, tmp_path) -> None:
    from campaignkit import keystore
    from fakes.state_rows import record_resources

    from penguinctl.webhooks import endpoints

    engine = migrated_engine
    record_resources(state_url, [("tenant", "acme", "acme", {})])
    secrets = keystore(tmp_path)
    for path in ("a", "b"):
        endpoints.add(engine, secrets, f"http://127.0.0.1:9/{path}", tenant="acme",
                      allow_private=True, actor="t")  # fmt: skip
    with engine.begin() as conn:
        for i in range(300):
            emit(conn, "campaign.completed", tenant="acme", subject=f"campaign/c{i}",
                 payload={"campaign": f"c{i}"})  # fmt: skip
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def run() -> None:
        barrier.wait()
        n = 0
        while True:
            done = relay(engine, now=clock.now(), limit=40)
            if not done:
                break
            n += done
        counts.append(n)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 300
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT event_seq, endpoint_id FROM webhook_deliveries")).all()
        undispatched = conn.execute(
            sa.text("SELECT count(*) FROM events WHERE dispatched_at IS NULL")
        ).scalar()
    assert len(rows) == 600 and len(set(rows)) == 600 and undispatched == 0


def test_catalogue_schemas_and_readme_agree() -> None:
    import jsonschema

    names = {t.name for t in catalogue.TYPES}
    files = {p.name.removesuffix(".json") for p in catalogue.SCHEMAS.glob("*.json")}
    assert names == files
    required = {
        "domain.applied", "drift.detected", "dkim.rotation.advanced", "dkim.rotation.failed",
        "secret.rotated", "check.failed", "check.recovered", "blocklist.listed",
        "blocklist.delisted", "campaign.paused", "campaign.completed", "send.ambiguous",
        "backup.failed", "backup.verified", "restore.drill.failed", "invoice.created",
        "invoice.paid", "invoice.payment_failed", "tenant.suspended", "tenant.reactivated",
        "budget.threshold", "job.failed",
    }  # fmt: skip
    assert required <= names
    for name in names:
        jsonschema.Draft202012Validator.check_schema(catalogue.envelope_schema(name))
        assert catalogue.payload_schema(name)["description"]
        assert set(catalogue.ALERT_TYPES) <= names
    assert catalogue.markdown_table() in README.read_text(), "README catalogue table is stale"


def test_prune_keeps_what_is_still_being_delivered(migrated_engine, state_url, tmp_path) -> None:
    from datetime import timedelta

    from campaignkit import keystore
    from fakes.state_rows import record_resources

    from penguinctl.events.retention import prune
    from penguinctl.webhooks import endpoints

    engine = migrated_engine
    record_resources(state_url, [("tenant", "acme", "acme", {})])
    endpoints.add(engine, keystore(tmp_path), "http://127.0.0.1:9/h", tenant="acme",
                  allow_private=True, actor="t")  # fmt: skip
    old = clock.now() - timedelta(days=100)
    with engine.begin() as conn:
        for name in ("done", "waiting"):
            emit(conn, "campaign.completed", tenant="acme", subject=f"campaign/{name}",
                 payload={"campaign": name}, at=old)  # fmt: skip
        emit(conn, "campaign.completed", tenant="acme", subject="campaign/new",
             payload={"campaign": "new"})  # fmt: skip
    relay(engine, now=clock.now())
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE webhook_deliveries SET status = 'succeeded' WHERE event_seq = "
                "(SELECT seq FROM events WHERE subject = 'campaign/done')"
            )
        )
    counts = prune(engine, before=clock.now() - timedelta(days=90), actor="t")
    assert counts["events"] == 1 and counts["deliveries"] == 1
    assert sorted(e["data"]["campaign"] for e in events(engine)) == ["new", "waiting"]


def test_migration_0009_matches_the_models(tmp_path) -> None:
    """The tables of this feature as the migration creates them and as the SQLModel classes
    declare them: same columns (type, nullability), indexes, unique constraints, foreign keys."""
    from sqlmodel import SQLModel

    import penguinctl.alerts.tables
    import penguinctl.events.tables
    import penguinctl.webhooks.tables  # noqa: F401
    from penguinctl.state.db import make_engine, migrate

    names = ["events", "webhook_endpoints", "webhook_deliveries", "webhook_attempts",
             "alert_subscriptions", "alert_items", "alert_digests"]  # fmt: skip
    migrated = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    migrate(migrated)
    declared = sa.create_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    SQLModel.metadata.create_all(declared, tables=[SQLModel.metadata.tables[n] for n in names])

    def shape(engine) -> dict:
        insp = sa.inspect(engine)
        return {
            t: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)),
                sorted((u["name"], tuple(u["column_names"]))
                       for u in insp.get_unique_constraints(t)),
                sorted((tuple(f["constrained_columns"]), f["referred_table"],
                        f["options"].get("ondelete")) for f in insp.get_foreign_keys(t)),
            )
            for t in names
        }  # fmt: skip

    assert shape(migrated) == shape(declared)
    migrated.dispose()
    declared.dispose()
