"""Restore drills: a backup records the mail store's manifest (file count, bytes, digest of
every file's sha256); `backup verify` (and serve's `backup-verify` job) restores the mail store
to a scratch path on the server and compares it with that manifest; a mismatch fails the drill
(exit 5) and emits `restore.drill.failed`; `backup drills` shows the last verified restore per
server (what the dashboard shows). Also: another tenant's drills are not listed to it."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
from test_backup import cli, host  # noqa: F401  (fixtures)

pytestmark = pytest.mark.clock


def test_drill_compares_the_restored_mail_store_with_the_manifest(cli, tmp_path):  # noqa: F811
    root, spec = cli.root, cli.spec
    run = cli("backup", "run", "mx1", "-f", spec, "--mailu-root", root, "-o", "json")
    assert run.code == 0, run.err
    assert run.json()["servers"][0]["mail_files"] == 2
    scratch_before = set(glob.glob("/tmp/tmp.*"))

    ok = cli("backup", "verify", "mx1", "-o", "json")
    assert ok.code == 0, ok.err + ok.out
    drill = ok.json()["servers"][0]["drill"]
    assert drill["match"] is True and drill["restored"]["files"] == 2
    assert drill["restored"]["bytes"] == sum(
        p.stat().st_size for p in (root / "mail").rglob("*") if p.is_file()
    )
    # the scratch path (mktemp -d on the server, here this machine) is removed: no new
    # /tmp/tmp.* holds the restored tree (other tests running alongside make /tmp/tmp.* too)
    left = [
        p for p in set(glob.glob("/tmp/tmp.*")) - scratch_before if Path(p + str(root)).exists()
    ]
    assert left == []

    shown = cli("backup", "drills", "-o", "json")
    assert shown.code == 0, shown.err
    (row,) = shown.json()
    assert row["server"] == "mx1" and row["last_drill"] == "ok" and row["mail_files"] == 2
    assert row["verified_snapshot"] == run.json()["servers"][0]["snapshot"]

    # the snapshot no longer holds what the manifest says (a lost message): the drill fails
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.begin() as conn:
        stats = json.loads(conn.execute(sa.text("SELECT stats FROM backup_snapshots")).scalar())
        stats["manifest"]["files"] += 1
        conn.execute(sa.text("UPDATE backup_snapshots SET stats = :s"), {"s": json.dumps(stats)})
    engine.dispose()
    bad = cli("backup", "verify", "mx1", "-o", "json")
    assert bad.code == 5, bad.out + bad.err
    assert "restore drill" in bad.json()["servers"][0]["error"]
    events = [e for e in cli("events", "list", "-o", "json").json()
              if e["type"] == "restore.drill.failed"]  # fmt: skip
    assert len(events) == 1 and events[0]["tenant"] == "acme"
    (row,) = cli("backup", "drills", "-o", "json").json()
    assert row["last_drill"] == "failed" and row["verified_snapshot"]  # the older pass stays


def test_last_drills_are_tenant_scoped(tmp_path):
    from penguinctl.backup import records
    from penguinctl.state.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    for tenant, server in (("acme", "mx1"), ("globex", "gx1")):
        rid = records.start_run(engine, tenant=tenant, server=server, operation="verify",
                                repository="sftp:x@y:/r", actor="t")  # fmt: skip
        records.finish_run(engine, rid, status="ok", actor="t", tenant=tenant,
                           resource=f"server/{server}", action="backup.verify",
                           snapshot_id="s" * 64, stats={"drill_files": 3})  # fmt: skip
    assert [d["server"] for d in records.last_drills(engine, tenant="acme")] == ["mx1"]
    assert [d["server"] for d in records.last_drills(engine)] == ["gx1", "mx1"]
    assert records.last_drills(engine, tenant="acme")[0]["verified"]["mail_files"] == 3
    engine.dispose()
