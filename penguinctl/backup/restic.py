"""restic, run on the server over SSH (restic is installed there; penguinctl only drives it).

Contract:
- Secrets (``RESTIC_PASSWORD``, S3 keys) travel on the command's **stdin** as ``NAME=value``
  lines ended by an empty line; a small POSIX-sh wrapper exports them before it runs restic, so
  they are never in argv (``ps``) nor in a file on the server.
- Every restic call uses ``--json`` where restic offers it, and is parsed here; a non-zero exit
  raises ``ResticFailed`` naming the server, the restic sub-command and restic's last error line.
- ``backup`` quiesces the MailU stack around the snapshot (redis ``SAVE``, ``docker compose
  pause``; ``unpause`` runs from a shell ``trap``, so it also runs when restic fails) and, while
  the stack is still paused, takes the sha256 of a few sample files: ``verify`` later restores
  exactly those files from the snapshot and compares.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from penguinctl.errors import ProviderError

# The part of the MailU root that is backed up (mailu.md, "Host volumes"), plus the files that
# rebuild the stack and penguinctl's per-domain DKIM keys. Missing entries are skipped.
MAILU_PATHS = (
    "data",
    "dkim",
    "dkim-sign",
    "mail",
    "mailqueue",
    "certs",
    "overrides",
    "filter",
    "redis",
    "dav",
    "webmail",
    "mailu.env",
    "docker-compose.yml",
)
SAMPLES_MARKER = "--penguinctl-samples--"

# Exports NAME=value lines from stdin until an empty line. For an SFTP repository with a key of
# penguinctl's (``sftp.ENV_KEY``), it starts an ssh-agent holding that key (never written to a
# file), writes the pinned host key and a restic wrapper that passes ``-o sftp.command=...`` into
# the private directory ``sftp.ENV_DIR`` names; ``_pc_clean`` (the EXIT trap, also called by
# the scripts' own traps) stops the agent and removes the directory.
_ENV_PRELUDE = (
    'while IFS= read -r _l; do [ -z "$_l" ] && break; export "$_l"; done; unset _l; '
    + r"""
_pc_clean() {
  [ -n "${SSH_AGENT_PID:-}" ] && kill "$SSH_AGENT_PID" 2>/dev/null
  [ -n "${PENGUINCTL_SFTP_DIR:-}" ] && rm -rf -- "$PENGUINCTL_SFTP_DIR"
  return 0
}
trap _pc_clean EXIT
if [ -n "${PENGUINCTL_SFTP_DIR:-}" ]; then
  rm -rf -- "$PENGUINCTL_SFTP_DIR"; mkdir -m 700 -- "$PENGUINCTL_SFTP_DIR" || exit 94
  if [ -n "${PENGUINCTL_SFTP_KEY:-}" ]; then
    eval "$(ssh-agent -s)" >/dev/null || { echo "ssh-agent did not start" >&2; exit 94; }
    printf '%s' "$PENGUINCTL_SFTP_KEY" | base64 -d | ssh-add -q - 2>/dev/null \
      || { echo "ssh-add refused the SFTP key (sftp_private_key)" >&2; exit 94; }
  fi
  unset PENGUINCTL_SFTP_KEY
  [ -n "${PENGUINCTL_SFTP_KNOWN:-}" ] \
    && printf '%s' "$PENGUINCTL_SFTP_KNOWN" | base64 -d > "$PENGUINCTL_SFTP_DIR/known_hosts"
  printf '#!/bin/sh\nexec "%s" -o "sftp.command=%s" "$@"\n' \
    "$PENGUINCTL_RESTIC" "$PENGUINCTL_SFTP_SSH" > "$PENGUINCTL_SFTP_DIR/restic"
  chmod 700 "$PENGUINCTL_SFTP_DIR/restic"
fi
"""
)

# The mail store's manifest, from the MailU root $1: "MANIFEST <files> <bytes> <digest>", the
# digest being the sha256 of the sorted `sha256sum` lines of every file under mail/ (paths
# relative to the root), so a restore elsewhere compares equal.
_MANIFEST_FN = r"""
_pc_manifest() {
  if [ -d "$1/mail" ]; then
    ( cd "$1" || exit 1
      files=$(find mail -type f | wc -l)
      bytes=$(find mail -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
      digest=$(find mail -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum \
        | sha256sum | cut -d' ' -f1)
      echo "MANIFEST $files $bytes $digest" )
  else
    echo "MANIFEST 0 0 none"
  fi
}
"""
MANIFEST_MARKER = "--penguinctl-manifest--"

# $1 root, $2 compose project, $3 quiesce (pause|none), $4 sample count, $5 restic binary,
# $6 repository, $7 host tag; then the entries (relative to the root) to back up.
_BACKUP_SCRIPT = (
    _ENV_PRELUDE
    + _MANIFEST_FN
    + r"""
root=$1; project=$2; quiesce=$3; nsamples=$4; restic=$5; repo=$6; host=$7; shift 7
[ -d "$root" ] || { echo "MailU root $root does not exist" >&2; exit 90; }
n=$#
for p in "$@"; do [ -e "$root/$p" ] && set -- "$@" "$root/$p"; done
shift "$n"
[ "$#" -gt 0 ] || { echo "nothing to back up under $root" >&2; exit 91; }
dc() { docker compose --project-directory "$root" -p "$project" "$@"; }
if [ "$quiesce" = pause ] && [ -f "$root/docker-compose.yml" ]; then
  dc exec -T redis redis-cli save >/dev/null 2>&1 \
    || echo "redis SAVE failed: the redis dump may be older than the snapshot" >&2
  dc pause >&2 || { echo "docker compose pause failed" >&2; exit 92; }
  trap 'dc unpause >&2 || echo "docker compose unpause FAILED" >&2; _pc_clean' EXIT
fi
rc=0
"$restic" -r "$repo" backup --json --host "$host" --tag penguinctl --tag mailu "$@" || rc=$?
echo "--penguinctl-samples--"
if [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ]; then
  find "$@" -type f -size -20M 2>/dev/null | head -n 5000 | shuf -n "$nsamples" \
    | while IFS= read -r f; do sha256sum -- "$f"; done
  echo "--penguinctl-manifest--"
  _pc_manifest "$root"
fi
exit "$rc"
"""
)

# $1 restic, $2 repository, $3 snapshot; then the absolute paths to restore and hash.
_SAMPLE_RESTORE_SCRIPT = (
    _ENV_PRELUDE
    + r"""
restic=$1; repo=$2; snap=$3; shift 3
tmp=$(mktemp -d) || exit 93
trap 'rm -rf -- "$tmp"; _pc_clean' EXIT
n=$#
for p in "$@"; do set -- "$@" --include "$p"; done
shift "$n"
"$restic" -r "$repo" restore "$snap" --target "$tmp" "$@" >&2 || exit $?
cd "$tmp" && find . -type f -exec sha256sum -- {} +
"""
)

_RESTIC = _ENV_PRELUDE + '"$@"'


class ResticFailed(ProviderError):
    """restic exited non-zero on a server."""


@dataclass
class BackupOutcome:
    snapshot_id: str
    summary: dict[str, Any]
    samples: dict[str, str] = field(default_factory=dict)  # absolute path -> sha256
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None  # the mail store: files, bytes, digest


@dataclass
class VerifyOutcome:
    ok: bool
    check_ok: bool
    check_output: str
    compared: dict[str, str] = field(default_factory=dict)  # path -> ok|mismatch|missing
    problems: list[str] = field(default_factory=list)


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.lower().startswith(("fatal", "error")):
            return ln[:300]
    return (lines[-1] if lines else "")[:300]


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among restic's output lines (status lines, summaries); others skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def json_document(text: str) -> Any:
    """The first line of ``text`` that is a whole JSON array or object (``snapshots``,
    ``forget``); raises ``ValueError`` when there is none."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("[", "{")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError("no JSON document in restic's output")


def parse_manifest(text: str) -> dict[str, Any] | None:
    """``MANIFEST files bytes digest`` as a dict, or None when absent."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "MANIFEST" and parts[1].isdecimal():
            return {"files": int(parts[1]), "bytes": int(parts[2] or 0), "digest": parts[3]}
    return None


# $1 restic, $2 repository, $3 snapshot, $4 the MailU root: restore the mail store into a
# scratch directory, print its manifest, remove it.
_DRILL_SCRIPT = (
    _ENV_PRELUDE
    + _MANIFEST_FN
    + r"""
restic=$1; repo=$2; snap=$3; root=$4
tmp=$(mktemp -d) || exit 93
trap 'rm -rf -- "$tmp"; _pc_clean' EXIT
"$restic" -r "$repo" restore "$snap" --target "$tmp" --include "$root/mail" >&2 || exit $?
_pc_manifest "$tmp$root"
"""
)


def parse_samples(text: str) -> dict[str, str]:
    """``sha256sum`` lines (``HEX  PATH``) as {path: hex}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, path = line.partition("  ")
        if sep and len(digest) == 64:
            out[path] = digest
    return out


class ResticRemote:
    """restic against one repository, on one server reached through ``conn`` (an open
    ``SshConnection`` or anything with its ``run``)."""

    def __init__(
        self,
        conn: Any,
        *,
        server: str,
        repository: str,
        env: Mapping[str, str],
        binary: str = "restic",
        timeout: float = 6 * 3600.0,
    ) -> None:
        self.conn = conn
        self.server = server
        self.repository = repository
        self._env = dict(env)
        self.binary = binary
        self.timeout = timeout
        from penguinctl.backup import sftp

        wrapped = sftp.wrap(self._env, repository, binary)
        if wrapped is not None:  # restic through the SFTP wrapper the prelude writes
            self.binary = wrapped

    def _stdin(self) -> str:
        for name, value in self._env.items():
            if "\n" in value or "\n" in name:
                raise ProviderError(f"backup secret field {name} holds a newline")
        return "".join(f"{k}={v}\n" for k, v in self._env.items()) + "\n"

    def _run(self, script: str, args: Sequence[str], what: str, *, ok: Sequence[int] = (0,)):
        res = self.conn.run(
            ["sh", "-c", script, "sh", *args], stdin=self._stdin(), timeout=self.timeout
        )
        if res.rc not in ok:
            raise ResticFailed(
                f"server {self.server}: restic {what} exited {res.rc}: "
                f"{_last_error(res.stderr or res.stdout)}",
                hint=_hint(res.stderr),
            )
        return res

    def restic(self, *args: str, what: str | None = None, ok: Sequence[int] = (0,)):
        return self._run(
            _RESTIC, [self.binary, "-r", self.repository, *args], what or args[0], ok=ok
        )

    # -- repository ------------------------------------------------------------------------------
    def ensure_repository(self) -> bool:
        """Initialise the repository when there is none; True when it was created."""
        res = self.conn.run(
            ["sh", "-c", _RESTIC, "sh", self.binary, "-r", self.repository, "cat", "config"],
            stdin=self._stdin(),
            timeout=self.timeout,
        )
        if res.ok:
            return False
        err = res.stderr
        if "Host key verification failed" in err or "sftp session" in err:
            why = (
                "the backup host's key does not match the pinned one (sftp_known_hosts)"
                if "Host key verification failed" in err
                else f"no SFTP session to the backup host: {_last_error(err)}"
            )
            raise ResticFailed(
                f"server {self.server}: {why}",
                hint="check the SFTP fields (sftp_private_key, sftp_known_hosts) of the server's "
                "backups secret and the backup host",
            )
        if "wrong password" in err or "no key found" in err:
            raise ResticFailed(
                f"server {self.server}: the repository {self.repository} does not open with the "
                f"password at backups/{self.server}",
                hint="restore the right password into the secrets backend, or use a new repository",
            )
        if res.rc == 127 or ("not found" in err and "restic" in err and "config" not in err):
            raise ResticFailed(
                f"server {self.server}: restic is not installed there",
                hint="install it (Debian/Ubuntu: apt-get install restic)",
            )
        self.restic("init", what="init")
        return True

    # -- operations ------------------------------------------------------------------------------
    def backup(
        self,
        root: str,
        *,
        project: str = "mailu",
        quiesce: bool = True,
        samples: int = 8,
        paths: Sequence[str] = MAILU_PATHS,
    ) -> BackupOutcome:
        args = [
            root.rstrip("/") or "/",
            project,
            "pause" if quiesce else "none",
            str(samples),
            self.binary,
            self.repository,
            self.server,
            *paths,
        ]
        res = self._run(_BACKUP_SCRIPT, args, "backup", ok=(0, 3))
        body, _, tail = res.stdout.partition(SAMPLES_MARKER)
        sample_text, _, manifest_text = tail.partition(MANIFEST_MARKER)
        summary = next((m for m in json_lines(body) if m.get("message_type") == "summary"), None)
        if summary is None or not summary.get("snapshot_id"):
            raise ResticFailed(f"server {self.server}: restic backup reported no snapshot")
        warnings = [ln for ln in res.stderr.splitlines() if ln.strip()][-5:] if res.rc else []
        if res.rc == 3:
            warnings.insert(0, "some files could not be read: the snapshot is incomplete")
        return BackupOutcome(
            summary["snapshot_id"],
            summary,
            parse_samples(sample_text),
            warnings,
            parse_manifest(manifest_text),
        )

    def snapshots(self) -> list[dict[str, Any]]:
        res = self.restic("snapshots", "--json", "--host", self.server)
        try:
            data = json_document(res.stdout)
        except ValueError:
            raise ResticFailed(
                f"server {self.server}: unreadable `restic snapshots` output"
            ) from None
        return list(data or [])

    def forget(self, *, daily: int, weekly: int, monthly: int) -> dict[str, list[str]]:
        """Apply the retention (``forget``, then ``prune``): {"keep": ids, "remove": ids}."""
        self.unlock_stale()
        res = self.restic(
            "forget",
            "--json",
            "--host",
            self.server,
            "--keep-daily",
            str(daily),
            "--keep-weekly",
            str(weekly),
            "--keep-monthly",
            str(monthly),
        )
        keep: list[str] = []
        remove: list[str] = []
        try:
            groups = json_document(res.stdout) or []
        except ValueError:
            groups = []
        for group in groups:
            keep += [s["id"] for s in group.get("keep") or []]
            remove += [s["id"] for s in group.get("remove") or []]
        if remove:
            self.restic("prune", what="prune")
        return {"keep": keep, "remove": remove}

    def unlock_stale(self) -> None:
        """``restic unlock``: remove locks left by restic processes that no longer exist (a
        backup killed with its SSH session); a live process's lock stays. Exclusive operations
        (check, prune) would otherwise fail until someone unlocks by hand."""
        self.restic("unlock", what="unlock")

    def check(self, subset: str) -> tuple[bool, str]:
        """``restic check --read-data-subset``: (ok, restic's output)."""
        self.unlock_stale()
        res = self.restic("check", f"--read-data-subset={subset}", ok=range(0, 256))
        return res.ok, (res.stdout + res.stderr).strip()

    def sample_restore(self, snapshot: str, paths: Sequence[str]) -> dict[str, str]:
        """Restore ``paths`` of ``snapshot`` into a temp dir on the server; {path: sha256}."""
        res = self._run(
            _SAMPLE_RESTORE_SCRIPT,
            [self.binary, self.repository, snapshot, *paths],
            "restore (sample files)",
        )
        return {p.removeprefix("."): h for p, h in parse_samples(res.stdout).items()}

    def drill(self, snapshot: str, root: str) -> dict[str, Any] | None:
        """Restore the mail store of ``snapshot`` into a scratch directory on the server and
        return its manifest (None when restic printed none)."""
        res = self._run(_DRILL_SCRIPT, [self.binary, self.repository, snapshot, root],
                        "restore (drill)")  # fmt: skip
        return parse_manifest(res.stdout)

    def list_files(self, snapshot: str, limit: int = 5000) -> list[dict[str, Any]]:
        res = self.restic("ls", "--json", snapshot)
        nodes = [m for m in json_lines(res.stdout) if m.get("struct_type") == "node"]
        return [n for n in nodes if n.get("type") == "file"][:limit]

    def restore(self, snapshot: str, target: str) -> str:
        res = self.restic("restore", snapshot, "--target", target, "--verify", what="restore")
        return res.stdout.strip()[-2000:]

    def command_line(self, *args: str) -> str:
        """How a restic call looks on the server (no secrets): for messages and docs."""
        return shlex.join([self.binary, "-r", self.repository, *args])


def _hint(stderr: str) -> str | None:
    if "wrong password" in stderr or "no key found" in stderr:
        return "the repository does not open with the password in the secrets backend"
    if "command not found" in stderr or "not found" in stderr.split("\n", 1)[0]:
        return "install restic on the server (apt-get install restic)"
    if "Is there a repository" in stderr:
        return "run `penguinctl backup run` first: it initialises the repository"
    return None
