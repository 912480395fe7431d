"""`server rebuild` killed (SIGKILL) after each of its steps, then re-run: every run resumes the
one journaled rebuild, the replacement is taken once, each step is audited once, and the last
run ends with the mail tree restored and DNS moved. Also: the migration matches the model."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa
from clitools import run_inprocess
from daemons import need_binary
from recoverykit import NEW, mail_services, prepare, rebuild_args, start_world, tree_digest

# Not marked `clock`: its processes run at a fixed date (PENGUINCTL_TODAY / a clock file), which
# takes precedence over the shifted runs' PENGUINCTL_TIME_OFFSET: a shifted re-run repeats it.
STEPS = ("replacement", "bootstrap", "install", "restore", "cutover", "verify", "retire")


def _journal(url: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text("SELECT id, status, steps, replacement FROM server_rebuilds")
                )
            ]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def test_sigkill_after_each_step_then_rerun_converges(tmp_path, monkeypatch, capsys):
    need_binary("restic", "restic")
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")

    def cli(*args):
        return run_inprocess(capsys, *args)

    with contextlib.ExitStack() as stack:
        w = start_world(tmp_path, stack)
        prep = prepare(cli, w, monkeypatch)
        smtp_port, imap_port = mail_services(tmp_path, stack)
        url = os.environ["PENGUINCTL_STATE"]
        import json

        killed = []
        for k in range(1, len(STEPS)):  # kill once the k-th step is journaled
            log = open(tmp_path / f"run-{k}.log", "w+")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, "-m", "penguinctl", *rebuild_args(w, smtp_port, imap_port)],
                env=dict(os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

            def steps_done() -> int:
                rows = _journal(url)
                if not rows:
                    return 0
                steps = rows[0][2]
                return len(json.loads(steps) if isinstance(steps, str) else steps)

            deadline = time.monotonic() + 120
            while steps_done() < k and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log.seek(0)
            output = log.read()
            log.close()
            finished = [r for r in _journal(url) if r[1] == "done"]
            # killed, or (the last steps are quick) finished just before the signal
            assert proc.returncode == -signal.SIGKILL or finished, output
            killed.append(steps_done())
            if finished:
                break
        assert killed == sorted(killed) and killed[0] >= 1 and len(set(killed)) >= 4, killed

        if not [r for r in _journal(url) if r[1] == "done"]:
            final = cli(*rebuild_args(w, smtp_port, imap_port), "-o", "json")
            assert final.code == 0, final.err + final.out
        rows = _journal(url)
        assert len(rows) == 1 and rows[0][1] == "done"  # one rebuild, one replacement
        replacement = rows[0][3] if isinstance(rows[0][3], dict) else json.loads(rows[0][3])
        assert replacement["address"] == NEW
        audit = cli("state", "audit", "-o", "json").json()
        rows_ = audit if isinstance(audit, list) else audit.get("events", [])
        actions = [e["action"] for e in rows_ if e["action"].startswith("server.rebuild.")]
        for step in ("start", *STEPS):
            assert actions.count(f"server.rebuild.{step}") == 1, (step, actions)
        after = {k: v for k, v in tree_digest(w.root).items() if k in prep.before}
        assert after == prep.before
        w.point_spec_at_new()
        assert cli("plan", "-f", w.spec, "--detailed-exitcode").code == 0


def test_migration_0010_matches_the_model(tmp_path) -> None:
    from sqlmodel import SQLModel

    import penguinctl.recovery.tables  # noqa: F401
    from penguinctl.state.db import make_engine, migrate

    migrated = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    migrate(migrated)
    declared = sa.create_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    SQLModel.metadata.create_all(declared, tables=[SQLModel.metadata.tables["server_rebuilds"]])

    def shape(engine) -> tuple:
        insp = sa.inspect(engine)
        t = "server_rebuilds"
        return (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
            sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(t)),
        )

    assert shape(migrated) == shape(declared)
    migrated.dispose()
    declared.dispose()
