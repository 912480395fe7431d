"""The ledger under concurrency: two worker processes on one PostgreSQL state store share a
campaign (FOR UPDATE SKIP LOCKED) without sending any (lead, step) twice; a dead worker's claims
become ambiguous while a live worker's are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from campaignkit import make_campaign, record_mailboxes, sends_of
from smtpsink import SmtpSink


@pytest.mark.parametrize("state_url", ["postgres"], indirect=True)
def test_two_workers_on_postgresql_split_the_work(state_url, tmp_path) -> None:
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(state_url)
    migrate(engine)
    senders = ["a@one.example", "b@two.example", "c@three.example"]
    leads = 600
    env = {**os.environ, "PENGUINCTL_STATE": state_url, "PENGUINCTL_HOME": str(tmp_path / "home")}
    with SmtpSink(tmp_path, keep_bodies=False) as sink:
        record_mailboxes(engine, "acme", senders, smtp_port=sink.port)
        cid = make_campaign(
            engine,
            "acme",
            "shared",
            senders=senders,
            steps=[{"subject": "Hi {{ email }}", "body": "One step"}],
            leads=[{"email": f"p{i}@dest.example"} for i in range(leads)],
        )
        # the unsubscribe key is created once, before two processes race to create it
        subprocess.run(
            [
                sys.executable,
                "-m",
                "penguinctl",
                "worker",
                "run",
                "--once",
                "--no-inbound",
                "--max-sends",
                "1",
                "-o",
                "json",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        cmd = [
            sys.executable,
            "-m",
            "penguinctl",
            "worker",
            "run",
            "--once",
            "--no-inbound",
            "--concurrency",
            "2",
            "-o",
            "json",
        ]
        procs = [
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
        received = dict(sink.message_ids)
    sends = sends_of(engine, cid)
    engine.dispose()
    assert len(sends) == leads and {s.status for s in sends} == {"sent"}
    assert len(received) == leads and max(received.values()) == 1
    by_worker: dict[str, int] = {}
    for s in sends:
        by_worker[s.worker] = by_worker.get(s.worker, 0) + 1
    counts = sorted(by_worker.values())
    summaries = [json.loads(o[0]) for o in outs]
    assert len(counts) == 3, summaries  # the first single send, then the two racing workers
    # both did a real share of the work
    assert counts[0] == 1 and counts[1] >= 50, (
        counts,
        summaries,
    )


def test_recover_marks_only_dead_workers_claims(migrated_engine) -> None:
    from penguinctl.campaigns import ledger
    from penguinctl.campaigns.models import Lead

    engine = migrated_engine
    cid = make_campaign(
        engine,
        "acme",
        "rec",
        senders=["a@one.example"],
        leads=[{"email": f"r{i}@dest.example"} for i in range(3)],
    )
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(Lead.__table__.c.id).order_by("id"))]
    now = datetime.now(UTC)
    live = ledger.WorkerGuard(engine, "live-worker").acquire()
    try:
        with engine.begin() as conn:
            for lead_id, worker in zip(ids, ["dead-worker", "live-worker", None], strict=True):
                assert (
                    ledger.claim(
                        conn,
                        tenant="acme",
                        campaign_id=cid,
                        lead_id=lead_id,
                        step=0,
                        variant=None,
                        mailbox="a@one.example",
                        recipient=f"x{lead_id}@dest.example",
                        message_id=f"<{lead_id}@x>",
                        worker=worker or "tmp",
                        now=now,
                    )
                    is not None
                )
            conn.execute(
                sa.update(ledger.SENDS).where(ledger.SENDS.c.worker == "tmp").values(worker=None)
            )
        me = ledger.WorkerGuard(engine, "recovering-worker")
        me.dialect = engine.dialect.name
        if engine.dialect.name == "postgresql":
            me.acquire()
            found = ledger.recover(engine, me)
            me.release()
            # on PostgreSQL the live worker (holding its advisory lock) keeps its claim
            assert sorted(str(a.worker) for a in found) == ["None", "dead-worker"]
            expected = {"dead-worker": "ambiguous", "live-worker": "claimed", None: "ambiguous"}
        else:
            live.release()  # SQLite: one worker at a time; everything left over is dead
            found = ledger.recover(engine, me)
            expected = {"dead-worker": "ambiguous", "live-worker": "ambiguous", None: "ambiguous"}
        got = {s.worker: s.status for s in sends_of(engine, cid)}
        assert got == expected
        # a second claim of the same (lead, step) is impossible
        with engine.begin() as conn:
            assert (
                ledger.claim(
                    conn,
                    tenant="acme",
                    campaign_id=cid,
                    lead_id=ids[0],
                    step=0,
                    variant=None,
                    mailbox="a@one.example",
                    recipient="x",
                    message_id="<d>",
                    worker="w",
                    now=now,
                )
                is None
            )
        assert len(sends_of(engine, cid)) == 3
    finally:
        live.release()


def test_a_batch_of_claims_rolls_back_with_its_transaction(migrated_engine) -> None:
    """Claims inserted first in a transaction that then rolls back (as the claim transaction
    does when a mailbox row changed under it) leave nothing behind -- on SQLite too, whose
    driver opens its implicit transaction only before statements it recognises as DML."""
    from penguinctl.campaigns import ledger
    from penguinctl.campaigns.models import Lead

    engine = migrated_engine
    cid = make_campaign(
        engine,
        "acme",
        "rollback",
        senders=["a@one.example"],
        leads=[{"email": f"b{i}@dest.example"} for i in range(3)],
    )
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(Lead.__table__.c.id).order_by("id"))]
    rows = [
        ledger.ClaimRow(lead_id, 0, None, "a@one.example", f"b{i}@dest.example", f"<{lead_id}@x>")
        for i, lead_id in enumerate(ids)
    ]
    with engine.connect() as conn:
        tx = conn.begin()
        claimed = ledger.claim_many(
            conn, rows, tenant="acme", campaign_id=cid, worker="w", now=datetime.now(UTC)
        )
        assert sorted(claimed) == ids
        tx.rollback()
    assert sends_of(engine, cid) == []
    with engine.begin() as conn:  # and committed, they are there; a second claim gets none
        first = ledger.claim_many(
            conn, rows, tenant="acme", campaign_id=cid, worker="w", now=datetime.now(UTC)
        )
        again = ledger.claim_many(
            conn, rows, tenant="acme", campaign_id=cid, worker="w", now=datetime.now(UTC)
        )
    assert sorted(first) == ids and again == {}
    assert [s.status for s in sends_of(engine, cid)] == ["claimed"] * 3
