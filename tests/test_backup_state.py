"""`backup state` / `backup state-restore` on SQLite (online backup API) and PostgreSQL
(pg_dump / pg_restore of the state schema): what was there at backup time comes back exactly."""

from __future__ import annotations

import sqlalchemy as sa
from clitools import run_inprocess


def _snapshot(url: str) -> dict[str, list]:
    from penguinctl.state.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: sorted(map(tuple, conn.execute(sa.text(f"SELECT tenant, kind, name FROM {t}"))))
                for t in ("resources",)
            } | {
                "audit": sorted(
                    r[0] for r in conn.execute(sa.text("SELECT action FROM audit_events"))
                )
            }
    finally:
        engine.dispose()


def test_state_backup_and_restore(state_url, tmp_path, monkeypatch, capsys):
    from fakes.state_rows import record_resources

    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    record_resources(
        state_url,
        [
            ("tenant", "acme", "acme", {"plan": "starter"}),
            ("domain", "acme", "acme-mail.example", {"server": "mx1", "dns": "zones"}),
        ],
    )
    dest = tmp_path / "backups" / "state.bak"
    res = run_inprocess(capsys, "backup", "state", "--to", dest, "-o", "json")
    assert res.code == 0, res.err
    out = res.json()
    assert out["file"] == str(dest) and dest.stat().st_size == out["bytes"] > 0
    at_backup = _snapshot(state_url)
    assert ("acme", "domain", "acme-mail.example") in at_backup["resources"]

    # change the store after the backup: add one resource, drop another
    record_resources(state_url, [("tenant", "beta", "beta", {"plan": "starter"})])
    from penguinctl.state.db import make_engine

    engine = make_engine(state_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM resources WHERE kind = 'domain'"))
    engine.dispose()
    assert _snapshot(state_url)["resources"] != at_backup["resources"]

    refused = run_inprocess(capsys, "backup", "state-restore", dest, "-o", "json")
    assert refused.code == 2  # needs --yes
    done = run_inprocess(capsys, "backup", "state-restore", dest, "--yes", "-o", "json")
    assert done.code == 0, done.err
    after = _snapshot(state_url)
    assert after["resources"] == at_backup["resources"]
    # the restored audit log is the one copied (taken before the backup's own event), plus
    # the restore itself
    copied = [a for a in at_backup["audit"] if a != "backup.state"]
    assert after["audit"] == sorted([*copied, "backup.state-restore"])
    safety = done.json()["safety_copy"]
    assert safety and (tmp_path / "home").exists()
    from pathlib import Path

    assert Path(safety).stat().st_size > 0

    garbage = tmp_path / "garbage.bak"
    garbage.write_bytes(b"not a backup")
    bad = run_inprocess(capsys, "backup", "state-restore", garbage, "--yes")
    assert bad.code == 2, bad.err
