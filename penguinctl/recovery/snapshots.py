"""Which backup a rebuild restores: the newest snapshot whose latest restore drill passed.

A snapshot is *verified* when the newest ``verify`` run that drilled it (``backup verify``,
serve's ``backup-verify`` job) finished ``ok``; *corrupted* when that run failed. A snapshot
never drilled is *unverified*. The rebuild never restores a corrupted or unverified snapshot:
asked for one, it refuses and names the snapshot it would use instead.
"""

from __future__ import annotations

from typing import Any

from penguinctl.errors import CheckFailed, NotFound


def drills(db: Any, server: str) -> dict[str, str]:
    """snapshot id -> ok | failed, from the newest verify run of each snapshot."""
    from penguinctl.backup import records

    out: dict[str, str] = {}
    for run in records.list_runs(db, server=server, limit=1000):  # newest first
        sid = run.get("snapshot_id")
        if run["operation"] == "verify" and sid and sid not in out and run["status"] != "running":
            out[sid] = "ok" if run["status"] == "ok" else "failed"
    return out


def choose(db: Any, server: str, ref: str | None) -> tuple[dict[str, Any], list[str]]:
    """The snapshot to restore and notes about newer ones skipped."""
    from penguinctl.backup import records

    snaps = records.list_snapshots(db, server=server)  # newest first
    if not snaps:
        raise NotFound(
            f"server {server}: no recorded backup to rebuild from",
            hint="`penguinctl backup list SERVER` brings the list up to date",
        )
    state = drills(db, server)
    verified = [s for s in snaps if state.get(s["snapshot_id"]) == "ok"]
    best = verified[0] if verified else None
    if ref is not None:
        hits = [s for s in snaps if s["snapshot_id"].startswith(ref) or ref == "latest"]
        if not hits:
            raise NotFound(f"server {server}: no recorded snapshot {ref}")
        snap = hits[0]
        if state.get(snap["snapshot_id"]) == "ok":
            return snap, []
        instead = (
            f"; it would use {best['short_id']} of {best['taken_at']:%Y-%m-%d %H:%M} UTC "
            f"(verified) instead: --snapshot {best['short_id']}"
            if best
            else "; no snapshot of this server is verified: run `penguinctl backup verify`"
        )
        raise CheckFailed(
            f"server {server}: snapshot {snap['short_id']} is "
            f"{_why(state.get(snap['snapshot_id']))}: rebuild never restores it{instead}"
        )
    if best is None:
        raise CheckFailed(
            f"server {server}: none of its {len(snaps)} snapshot(s) passed a restore drill: "
            "rebuild restores only a verified backup",
            hint=f"run `penguinctl backup verify {server}` (or `--snapshot ID` after a drill)",
        )
    notes = [
        f"skipped newer snapshot {s['short_id']}: {_why(state.get(s['snapshot_id']))}"
        for s in snaps
        if s["taken_at"] > best["taken_at"]
    ]
    return best, notes


def _why(status: str | None) -> str:
    return "corrupted (its restore drill failed)" if status == "failed" else "never verified"
