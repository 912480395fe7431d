"""Backup operations on one server: run, list, prune, verify, restore.

Each function opens one SSH session to the server, drives restic there (``restic.ResticRemote``)
and records a run (``records``) with its audit event, also when it fails. They raise on
failure (after recording), so ``fan_out`` classifies the server; the return value is a JSON-able
dict for the command's output.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from penguinctl import clock
from penguinctl.backup import records
from penguinctl.backup.policy import Policy
from penguinctl.backup.repository import credentials, resolve
from penguinctl.backup.restic import _ENV_PRELUDE, ResticFailed, ResticRemote
from penguinctl.backup.targets import Target, connect
from penguinctl.errors import CheckFailed, PenguinError, ProviderError

DEFAULT_ROOT = "/mailu"

# $1 snapshot time (epoch seconds); then paths: prints "MTIME HEX  PATH" for each file that
# exists, so files changed after the snapshot can be told apart.
_LIVE_HASH_SCRIPT = r"""
t=$1; shift
for p in "$@"; do
  [ -f "$p" ] || continue
  printf '%s %s\n' "$(stat -c %Y -- "$p")" "$(sha256sum -- "$p")"
done
"""

# $1 root, $2 project, $3 restic, $4 repository, $5 snapshot: stop the stack, restore in
# place, start it again (from a trap, so also after a failed restore).
_RESTORE_IN_PLACE = (
    _ENV_PRELUDE
    + r"""
root=$1; project=$2; restic=$3; repo=$4; snap=$5
dc() { docker compose --project-directory "$root" -p "$project" "$@"; }
if [ -f "$root/docker-compose.yml" ]; then
  dc stop >&2 || { echo "docker compose stop failed" >&2; exit 92; }
  trap 'dc start >&2 || echo "docker compose start FAILED: start it by hand" >&2; _pc_clean' EXIT
fi
"$restic" -r "$repo" restore "$snap" --target / --verify
"""
)


@dataclass
class Options:
    """What every operation needs besides the server."""

    root: str = DEFAULT_ROOT
    project: str = "mailu"
    quiesce: bool = True
    samples: int = 8
    restic: str = "restic"
    timeout: float = 6 * 3600.0


class Job:
    """One server's backup context: policy, repository, credentials, session, run records."""

    def __init__(self, app: Any, target: Target, policy: Policy, options: Options) -> None:
        self.app = app
        self.target = target
        self.policy = policy
        self.options = options
        self.repository = resolve(policy.repository or self._last_repository(), target.name)

    def _last_repository(self) -> str | None:
        """Without a policy naming one: the repository this server was last backed up to."""
        if self.policy.name is not None:
            return None
        runs = records.list_runs(self.app.db, server=self.target.name, limit=20)
        return next((r["repository"] for r in runs if r["operation"] == "backup"), None)

    @property
    def resource(self) -> str:
        return f"server/{self.target.name}"

    def _remote(self, conn, *, create: bool) -> ResticRemote:
        env, _created = credentials(
            self.app.secrets(),
            self.target.name,
            self.repository,
            tenant=self.target.tenant,
            create=create,
        )
        return ResticRemote(
            conn,
            server=self.target.name,
            repository=self.repository,
            env=env,
            binary=self.options.restic,
            timeout=self.options.timeout,
        )

    def recorded(self, operation: str, work: Callable[[int], tuple[dict, dict | None, str | None]]):
        """Run ``work(run_id) -> (result, new_snapshot, snapshot_id)`` inside a recorded run."""
        engine, actor = self.app.db, self.app.actor()
        run_id = records.start_run(
            engine,
            tenant=self.target.tenant,
            server=self.target.name,
            operation=operation,
            repository=self.repository,
            actor=actor,
        )
        common = {
            "actor": actor,
            "tenant": self.target.tenant,
            "resource": self.resource,
            "action": "backup.run" if operation == "backup" else f"backup.{operation}",
        }
        try:
            result, snapshot, snap_id = work(run_id)
        except Exception as exc:
            message = (
                exc.message if isinstance(exc, PenguinError) else f"{type(exc).__name__}: {exc}"
            )
            from penguinctl.masking import mask

            records.finish_run(
                engine,
                run_id,
                status="failed",
                error=mask(message)[:1000],
                snapshot_id=getattr(exc, "snapshot_id", None),  # the drilled one, when known
                **common,
            )
            raise
        stats = {k: v for k, v in result.items() if k in _STAT_KEYS}
        records.finish_run(
            engine,
            run_id,
            status="ok",
            stats=stats,
            snapshot_id=snap_id,
            new_snapshot=snapshot,
            **common,
        )
        return {"run_id": run_id, **result}

    # -- operations ------------------------------------------------------------------------------
    def backup(self) -> dict[str, Any]:
        def work(_run_id: int):
            with connect(self.app, self.target, timeout=self.options.timeout) as conn:
                remote = self._remote(conn, create=True)
                created = remote.ensure_repository()
                out = remote.backup(
                    self.options.root,
                    project=self.options.project,
                    quiesce=self.options.quiesce,
                    samples=self.options.samples,
                )
                # restic 0.14 reports the short id in the summary: find the full one
                live = [s for s in remote.snapshots() if s["id"].startswith(out.snapshot_id)]
            full_id = live[0]["id"] if live else out.snapshot_id
            s = out.summary
            result = {
                "server": self.target.name,
                "repository": self.repository,
                "repository_created": created,
                "snapshot": full_id,
                "files_new": s.get("files_new"),
                "files_changed": s.get("files_changed"),
                "files_unmodified": s.get("files_unmodified"),
                "bytes_processed": s.get("total_bytes_processed"),
                "data_added": s.get("data_added"),
                "duration": s.get("total_duration"),
                "samples": len(out.samples),
                "warnings": out.warnings,
            }
            snap = records.snapshot_values(
                tenant=self.target.tenant,
                server=self.target.name,
                repository=self.repository,
                snap=live[0] if live else {"id": full_id},
            )
            snap["stats"] = {k: result[k] for k in ("files_new", "bytes_processed", "data_added")}
            if out.manifest is not None:  # what a restore drill must find again
                snap["stats"]["manifest"] = {**out.manifest, "root": self.options.root}
                result["mail_files"] = out.manifest["files"]
            snap["samples"] = out.samples
            return result, snap, full_id

        return self.recorded("backup", work)

    def snapshots(self) -> list[dict[str, Any]]:
        """restic's list for this server; the recorded list is brought in line with it."""
        with connect(self.app, self.target, timeout=self.options.timeout) as conn:
            live = self._remote(conn, create=False).snapshots()
        records.sync_snapshots(
            self.app.db,
            tenant=self.target.tenant,
            server=self.target.name,
            repository=self.repository,
            live=live,
        )
        return live

    def prune(self) -> dict[str, Any]:
        p = self.policy

        def work(_run_id: int):
            with connect(self.app, self.target, timeout=self.options.timeout) as conn:
                remote = self._remote(conn, create=False)
                outcome = remote.forget(daily=p.daily, weekly=p.weekly, monthly=p.monthly)
                live = remote.snapshots()
            records.sync_snapshots(
                self.app.db,
                tenant=self.target.tenant,
                server=self.target.name,
                repository=self.repository,
                live=live,
            )
            result = {
                "server": self.target.name,
                "retention": p.to_json()["retention"],
                "kept": len(outcome["keep"]),
                "removed": len(outcome["remove"]),
                "removed_ids": outcome["remove"],
            }
            return result, None, None

        return self.recorded("prune", work)

    def verify(self, *, subset: str, snapshot: str | None) -> dict[str, Any]:
        def work(_run_id: int):
            with connect(self.app, self.target, timeout=self.options.timeout) as conn:
                remote = self._remote(conn, create=False)
                check_ok, check_out = remote.check(subset)
                snap = self._pick_snapshot(remote, snapshot)
                try:
                    compared, problems = self._compare_samples(conn, remote, snap)
                    drill = self._drill(remote, snap)
                except PenguinError as exc:  # a restore that fails is a failed drill of snap
                    exc.snapshot_id = snap["snapshot_id"]  # type: ignore[attr-defined]
                    raise
            failed = [p for p, s in compared.items() if s != "ok"]
            if drill is not None and not drill["match"]:
                problems.append(
                    f"restore drill: the mail store restored to a scratch path has "
                    f"{drill['restored']['files']} files / {drill['restored']['bytes']} bytes "
                    f"(digest {drill['restored']['digest'][:12]}), the manifest "
                    f"{drill['manifest']['files']} / {drill['manifest']['bytes']} "
                    f"({drill['manifest']['digest'][:12]})"
                )
            result = {
                "server": self.target.name,
                "snapshot": snap["snapshot_id"],
                "check": "ok" if check_ok else "failed",
                "read_data_subset": subset,
                "samples": len(compared),
                "samples_ok": len(compared) - len(failed),
                "compared": compared,
                "problems": problems,
                "drill": drill,
                "drill_files": (drill or {}).get("restored", {}).get("files"),
            }
            if not check_ok or failed or problems:
                why = []
                if not check_ok:
                    tail = [ln for ln in check_out.splitlines() if ln.strip()][-3:]
                    why.append("restic check failed: " + " / ".join(tail)[:300])
                if failed:
                    why.append(f"{len(failed)} restored file(s) differ or are missing")
                why += problems
                err = CheckFailed(
                    f"server {self.target.name}: backup verification failed: " + "; ".join(why),
                    hint="the repository may be damaged: run a new backup and investigate",
                )
                err.snapshot_id = snap["snapshot_id"]  # type: ignore[attr-defined]
                raise err
            return result, None, snap["snapshot_id"]

        return self.recorded("verify", work)

    def _drill(self, remote: ResticRemote, snap: dict[str, Any]) -> dict[str, Any] | None:
        """Restore the snapshot's mail store to a scratch path and compare its file count,
        bytes and digest with the manifest taken at backup time (None: no manifest)."""
        manifest = (snap.get("stats") or {}).get("manifest")
        if not manifest:
            return None
        restored = remote.drill(snap["snapshot_id"], manifest.get("root") or self.options.root)
        want = {k: manifest[k] for k in ("files", "bytes", "digest")}
        got = restored or {"files": 0, "bytes": 0, "digest": "none"}
        return {"match": got == want, "manifest": want, "restored": got}

    def _pick_snapshot(self, remote: ResticRemote, ref: str | None) -> dict[str, Any]:
        engine = self.app.db
        snap = records.find_snapshot(engine, self.target.name, ref or "latest")
        if snap is not None:
            return snap
        live = remote.snapshots()
        records.sync_snapshots(
            engine,
            tenant=self.target.tenant,
            server=self.target.name,
            repository=self.repository,
            live=live,
        )
        snap = records.find_snapshot(engine, self.target.name, ref or "latest")
        if snap is None:
            raise ProviderError(
                f"server {self.target.name}: no snapshot {ref or '(any)'} in {self.repository}",
                hint="see `penguinctl backup list`",
            )
        return snap

    def _compare_samples(
        self, conn, remote: ResticRemote, snap: dict[str, Any]
    ) -> tuple[dict[str, str], list[str]]:
        """Restore sample files of ``snap`` and compare their sha256 with the hashes taken at
        backup time; for a snapshot penguinctl did not take, with the live files that did not
        change since."""
        expected: dict[str, str] = dict(snap.get("samples") or {})
        problems: list[str] = []
        if not expected:
            files = remote.list_files(snap["snapshot_id"])
            picked = random.sample(files, min(self.options.samples, len(files)))
            expected = self._live_hashes(conn, [f["path"] for f in picked], snap["taken_at"])
            if not expected:
                problems.append("no unchanged sample files to compare (snapshot not taken here)")
                return {}, problems
        restored = remote.sample_restore(snap["snapshot_id"], sorted(expected))
        compared = {}
        for path, digest in sorted(expected.items()):
            got = restored.get(path)
            compared[path] = "missing" if got is None else ("ok" if got == digest else "mismatch")
        return compared, problems

    def _live_hashes(self, conn, paths: list[str], taken_at: datetime) -> dict[str, str]:
        if not paths:
            return {}
        when = int(taken_at.timestamp())
        res = conn.run(["sh", "-c", _LIVE_HASH_SCRIPT, "sh", str(when), *paths])
        out = {}
        for line in res.stdout.splitlines():
            mtime, _, rest = line.partition(" ")
            digest, sep, path = rest.partition("  ")
            if sep and mtime.isdecimal() and int(mtime) <= when:
                out[path] = digest
        return out

    def restore(self, snapshot: str, to: str | None) -> dict[str, Any]:
        def work(_run_id: int):
            with connect(self.app, self.target, timeout=self.options.timeout) as conn:
                remote = self._remote(conn, create=False)
                snap = self._pick_snapshot(remote, snapshot)
                sid = snap["snapshot_id"]
                if to:
                    remote.restore(sid, to)
                else:
                    remote._run(
                        _RESTORE_IN_PLACE,
                        [
                            self.options.root,
                            self.options.project,
                            remote.binary,
                            remote.repository,
                            sid,
                        ],
                        "restore",
                    )
            result = {
                "server": self.target.name,
                "snapshot": sid,
                "target": to or "/ (in place)",
                "paths": snap.get("paths") or [],
            }
            return result, None, sid

        return self.recorded("restore", work)


_STAT_KEYS = frozenset(
    {
        "files_new",
        "files_changed",
        "bytes_processed",
        "data_added",
        "duration",
        "kept",
        "removed",
        "samples",
        "samples_ok",
        "check",
        "target",
        "repository_created",
        "drill_files",
        "mail_files",
    }
)


def now() -> datetime:
    return clock.now()


__all__ = ["DEFAULT_ROOT", "Job", "Options", "ResticFailed", "now"]
