"""Operations: one class per step kind. Each reads facts and changes the host only when they
differ from what the step asks for.

Contract of ``Operation`` (what a subclass implements):
- ``facts()``: the facts ``plan`` will read. The runner gathers the facts of every step in one
  round trip before the first step, so listing them here makes a no-change run cheap. Optional.
- ``plan(ctx) -> Change | None``: compare facts (``ctx.facts.get`` / ``peek``) with the params;
  None when already satisfied. Never changes the host. In check mode the returned ``Change`` is
  what gets reported (with a diff for files), so make its ``summary`` say what would happen.
- ``apply(ctx, change) -> str | None``: make the change; return a one-line detail, or None when
  it turned out nothing was needed (a command whose guard, checked on the host in the same
  round trip, already held). Raise ``StepFailed`` (or let an ``SshError`` out) on failure.
- ``touches()``: the remote paths ``apply`` may change (cached facts about them, or their
  parents, are dropped afterwards); None (the default) means anything.
Params are already rendered (every string) and validated when the op is built. Commands are argv
lists; user values travel as arguments, never pasted into shell text.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import secrets
import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from penguinctl.errors import ProviderError
from penguinctl.playbook import facts as F
from penguinctl.playbook import model as M


class StepFailed(ProviderError):
    """A step could not do its work on the host (a command exited non-zero, a path is of the
    wrong kind, a URL never answered)."""


@dataclass
class Change:
    summary: str
    diff: str | None = None
    data: Any = None


@dataclass
class OpContext:
    """What an operation may use: the connection, the host's fact cache and the run's options."""

    conn: Any  # SshConnection
    facts: F.FactCache
    check: bool = False
    sudo: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    templates_dir: Path | None = None

    def run(self, argv: list[str], *, timeout: float | None = None, stdin: bytes | None = None):
        return self.conn.run(argv, sudo=self.sudo, timeout=timeout, stdin=stdin)

    def must(self, argv: list[str], what: str, *, timeout: float | None = None):
        res = self.run(argv, timeout=timeout)
        if not res.ok:
            raise StepFailed(f"{what}: exit {res.rc}: {_last_line(res)}".rstrip(": "))
        return res


def _last_line(res: Any) -> str:
    from penguinctl.masking import mask

    text = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or [""]
    return mask(text[0][:300])


def _owner_spec(owner: str | None, group: str | None) -> str:
    return f"{owner or ''}:{group}" if group else (owner or "")


def _ownership_differs(info: F.FileInfo, owner: str | None, group: str | None) -> bool:
    return bool((owner and owner != info.owner) or (group and group != info.group))


class Operation(ABC):
    """Base of every operation (see the module docstring for the contract)."""

    name: ClassVar[str]

    def __init__(self, params: Any) -> None:
        self.params = params
        self.detail = "already as wanted"  # what an ok (unchanged) result says

    def facts(self) -> list[F.Fact[Any]]:
        return []

    def touches(self) -> list[str] | None:
        return None

    @abstractmethod
    def plan(self, ctx: OpContext) -> Change | None: ...

    @abstractmethod
    def apply(self, ctx: OpContext, change: Change) -> str | None: ...


class _PathOperation(Operation):
    """An operation on one path (``params.path``): it reads one fact of that path
    (``fact_type``) and changes only that path."""

    fact_type: ClassVar[type[Any]]

    def _fact(self) -> Any:
        return self.fact_type(self.params.path)

    def facts(self) -> list[F.Fact[Any]]:
        return [self._fact()]

    def touches(self) -> list[str]:
        return [self.params.path]


class Directory(_PathOperation):
    name = "directory"
    fact_type = F.DirectoryState
    params: M.DirectoryParams

    def plan(self, ctx: OpContext) -> Change | None:
        p = self.params
        info = ctx.facts.get(self._fact())
        if info == F.OTHER:
            raise StepFailed(f"{p.path} exists and is not a directory")
        mode = M.mode_bits(p.mode) if p.mode else None
        if info is None:
            return Change(f"create directory {p.path}")
        what = []
        if mode is not None and info.mode != mode:
            what.append(f"mode {info.mode:04o} -> {mode:04o}")
        if _ownership_differs(info, p.owner, p.group):
            what.append(f"owner {info.owner}:{info.group} -> {_owner_spec(p.owner, p.group)}")
        return Change(f"{p.path}: {', '.join(what)}") if what else None

    def apply(self, ctx: OpContext, change: Change) -> str:
        p = self.params
        if not ctx.sudo and not p.owner and not p.group:  # over SFTP: no process on the host
            ctx.conn.make_directory(p.path, M.mode_bits(p.mode) if p.mode else None)
            return change.summary
        script = 'mkdir -p -- "$1" && { [ -z "$2" ] || chmod -- "$2" "$1"; }'
        script += ' && { [ -z "$3" ] || chown -- "$3" "$1"; }'
        mode = format(M.mode_bits(p.mode), "o") if p.mode else ""
        owner = _owner_spec(p.owner, p.group)
        ctx.must(["sh", "-c", script, "sh", p.path, mode, owner], f"directory {p.path}")
        return change.summary


class File(_PathOperation):
    name = "file"
    fact_type = F.FileState
    params: M.FileParams

    def __init__(self, params: M.FileParams, data: bytes) -> None:
        super().__init__(params)
        self.data = data

    def plan(self, ctx: OpContext) -> Change | None:
        import hashlib

        p = self.params
        info = ctx.facts.get(self._fact())
        if info == F.OTHER:
            raise StepFailed(f"{p.path} exists and is not a regular file")
        mode = M.mode_bits(p.mode) if p.mode else None
        sha = hashlib.sha256(self.data).hexdigest()
        if info is None:
            change = Change(f"create {p.path} ({len(self.data)} bytes)", data="write")
        else:
            what, action = [], None
            if info.sha256 != sha:
                what.append("content")
                action = "write"
            if mode is not None and info.mode != mode:
                what.append(f"mode {info.mode:04o} -> {mode:04o}")
                action = action or "chmod"
            if _ownership_differs(info, p.owner, p.group):
                what.append(f"owner {info.owner}:{info.group} -> {_owner_spec(p.owner, p.group)}")
                action = action or "chown"
            if not what:
                return None
            change = Change(f"update {p.path}: {', '.join(what)}", data=action)
        if p.secret:
            change.summary += " (content hidden)"
        elif ctx.check and change.data == "write":
            change.diff = self._diff(ctx, info)
        return change

    def _diff(self, ctx: OpContext, info: Any) -> str:
        old = b""
        if info is not None:
            got = ctx.facts.get(F.FileContent(self.params.path))
            if not isinstance(got, tuple):
                return "(old content too large to compare)"
            old = got[1]
        return unified_diff(old, self.data, self.params.path)

    def apply(self, ctx: OpContext, change: Change) -> str:
        p = self.params
        mode = M.mode_bits(p.mode) if p.mode else 0o644
        if change.data == "write":
            ctx.conn.write_file(p.path, self.data, mode, sudo=ctx.sudo)
        elif change.data == "chmod":
            ctx.must(["chmod", "--", format(mode, "o"), p.path], f"chmod {p.path}")
        if (p.owner or p.group) and (change.data == "write" or "owner" in change.summary):
            ctx.must(["chown", "--", _owner_spec(p.owner, p.group), p.path], f"chown {p.path}")
        return change.summary


def unified_diff(old: bytes, new: bytes, path: str) -> str:
    """A unified diff of two versions of a text file, masked (revealed secrets are hidden)."""
    from penguinctl.masking import mask

    try:
        a, b = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary content differs ({len(old)} -> {len(new)} bytes)"
    lines = difflib.unified_diff(
        a.splitlines(keepends=True),
        b.splitlines(keepends=True),
        fromfile=f"{path} (now)" if old else "/dev/null",
        tofile=f"{path} (wanted)",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return mask(text)


class Line(_PathOperation):
    name = "line"
    fact_type = F.FileContent
    params: M.LineParams

    def plan(self, ctx: OpContext) -> Change | None:
        p = self.params
        got = ctx.facts.get(self._fact())
        if got == F.OTHER:
            raise StepFailed(f"{p.path} is not a regular file of at most {F.MAX_CONTENT} bytes")
        mode, old = got if got is not None else (M.mode_bits(p.mode or "0644"), b"")
        text = old.decode("utf-8", "surrogateescape")
        new = edit_line(text, p.line, p.regexp)
        if new == text and got is not None:
            return None
        data = new.encode("utf-8", "surrogateescape")
        diff = unified_diff(old, data, p.path)
        return Change(f"{'edit' if got is not None else 'create'} {p.path}", diff, (mode, data))

    def apply(self, ctx: OpContext, change: Change) -> str:
        mode, data = change.data
        ctx.conn.write_file(self.params.path, data, mode, sudo=ctx.sudo)
        return change.summary


def edit_line(text: str, line: str, regexp: str | None) -> str:
    """``text`` with ``line`` present: with ``regexp``, the last matching line is replaced (and
    other matching lines kept); without, or when nothing matches, ``line`` is appended unless
    the exact line is already there."""
    lines = text.splitlines()
    if regexp is not None:
        pattern = re.compile(regexp)
        hits = [i for i, old in enumerate(lines) if pattern.search(old)]
        if hits:
            lines[hits[-1]] = line
            return "\n".join(lines) + "\n"
    if line in lines:
        return text
    prefix = text if not text or text.endswith("\n") else text + "\n"
    return prefix + line + "\n"


class Package(Operation):
    name = "package"
    params: M.PackageParams

    def _fact(self) -> F.DebPackages:
        return F.DebPackages(*self.params.names)

    def facts(self) -> list[F.Fact[Any]]:
        return [self._fact()]

    def plan(self, ctx: OpContext) -> Change | None:
        installed = ctx.facts.get(self._fact())
        missing = [n for n in self.params.names if n not in installed]
        return Change(f"install {' '.join(missing)}", data=missing) if missing else None

    def apply(self, ctx: OpContext, change: Change) -> str:
        apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        install = [*apt, "install", "-y", "--no-install-recommends", "--", *change.data]
        if self.params.update:
            ctx.must([*apt, "update", "-q"], "apt-get update", timeout=600)
        res = ctx.run(install, timeout=1800)
        if not res.ok and not self.params.update:  # stale package lists: refresh once, retry
            ctx.must([*apt, "update", "-q"], "apt-get update", timeout=600)
            res = ctx.run(install, timeout=1800)
        if not res.ok:
            raise StepFailed(f"apt-get install: exit {res.rc}: {_last_line(res)}")
        return change.summary


def _unless_text(unless: str | list[str] | None) -> str | None:
    if unless is None or isinstance(unless, str):
        return unless
    return shlex.join(unless)


# Runs "$@" unless $1 (creates) exists or $2 (unless, shell text) exits 0; then prints $3 only.
# The unless text runs as `sh -c` would run it, in a subshell without positional parameters
# (one process fewer than a new sh).
_GUARD = (
    'c=$1; u=$2; m=$3; shift 3; if [ -n "$c" ] && [ -e "$c" ]; then echo "$m"; exit 0; fi; '
    'if [ -n "$u" ] && (set --; eval "$u") >/dev/null 2>&1 </dev/null; then echo "$m"; exit 0; '
    'fi; exec "$@"'
)


class Command(Operation):
    name = "command"
    params: M.CommandParams

    def _facts(self) -> list[F.Fact[bool]]:
        p = self.params
        out: list[F.Fact[bool]] = []
        if p.creates:
            out.append(F.Exists(p.creates))
        unless = _unless_text(p.unless)
        if unless:
            out.append(F.TestPasses(unless))
        return out

    def facts(self) -> list[F.Fact[Any]]:
        return list(self._facts())

    def _satisfied(self, values: list[bool]) -> bool:
        return any(values)  # the file exists, or the test passes

    def plan(self, ctx: OpContext) -> Change | None:
        guards = self._facts()
        summary = f"run {shlex.join(self.params.run)[:120]}"
        if not guards:
            return Change(summary)
        values = [ctx.facts.peek(f) for f in guards]
        if F.MISSING in values and not ctx.check:
            # Stale guards: check them on the host in the same round trip as the command.
            return Change(summary, data="guarded")
        values = [ctx.facts.get(f) for f in guards]
        self.detail = "guard holds (creates/unless)"
        return None if self._satisfied(values) else Change(summary)

    def apply(self, ctx: OpContext, change: Change) -> str | None:
        p = self.params
        argv = list(p.run)
        mark = ""
        if change.data == "guarded":
            mark = "@@penguinctl-skip-" + secrets.token_hex(8)
            argv = ["sh", "-c", _GUARD, "sh", p.creates or "", _unless_text(p.unless) or "", mark]
            argv += list(p.run)
        res = ctx.run(argv, timeout=p.timeout)
        if mark and res.ok and res.stdout.strip() == mark:
            self.detail = "guard holds (creates/unless)"
            return None
        if not res.ok:
            raise StepFailed(f"`{p.run[0]}` exited {res.rc}: {_last_line(res)}".rstrip(": "))
        return change.summary


class ComposeUp(Operation):
    name = "compose_up"
    params: M.ComposeUpParams

    def _fact(self) -> F.ComposeState:
        p = self.params
        return F.ComposeState(p.project_dir, p.project, p.file, p.env_file or "")

    def facts(self) -> list[F.Fact[Any]]:
        return [self._fact()]

    def plan(self, ctx: OpContext) -> Change | None:
        info = ctx.facts.get(self._fact())
        if info.up_to_date:
            self.detail = f"project {self.params.project} up ({info.running} running)"
            return None
        if not info.current:
            if not ctx.check:
                path = posixpath.join(self.params.project_dir, self.params.file)
                raise StepFailed(f"compose file {path} does not exist")
            why = "compose file not written yet"
        elif info.recorded != info.current:
            why = "compose or env file changed" if info.recorded else "never brought up"
        else:
            why = "no container running"
        return Change(f"docker compose -p {self.params.project} up -d ({why})")

    def apply(self, ctx: OpContext, change: Change) -> str:
        p = self.params
        script = (
            'set -e; cd -- "$1"; docker compose -p "$2" -f "$3" up -d >&2; '
            f'h=$({F.COMPOSE_HASH}); printf "%s\\n" "$h" > "$1/{F.COMPOSE_RECORD}"'
        )
        argv = ["sh", "-c", script, "sh", p.project_dir, p.project, p.file, p.env_file or ""]
        ctx.must(argv, f"docker compose -p {p.project} up -d", timeout=p.timeout)
        return change.summary


_WAIT = (
    'url=$1; want=" $2 "; end=$(( $(date +%s) + $3 )); '
    "while :; do "
    'code=$(curl -s $5 -o /dev/null -w "%{http_code}" --max-time 10 "$url" 2>/dev/null) || true; '
    'case "$want" in *" $code "*) echo "$code"; exit 0;; esac; '
    'if [ "$(date +%s)" -ge "$end" ]; then echo "${code:-000}"; exit 1; fi; '
    'sleep "$4"; done'
)


class WaitUrl(Operation):
    """Polls the URL with ``curl`` on the host until it answers one of ``status``; never
    "changed". In check mode it does not contact the URL."""

    name = "wait_url"
    params: M.WaitUrlParams

    def plan(self, ctx: OpContext) -> Change | None:
        p = self.params
        if not p.url.startswith(("http://", "https://")):
            raise StepFailed(f"wait_url: {p.url!r} is not an http(s) URL")
        if ctx.check:
            self.detail = f"would wait for {p.url}"
            return None
        start = time.monotonic()
        argv = ["sh", "-c", _WAIT, "sh", p.url, " ".join(map(str, p.status))]
        argv += [str(int(p.timeout)), f"{p.interval:g}", "-k" if p.insecure else ""]
        res = ctx.conn.run(argv, timeout=p.timeout + 30)  # never through sudo: a read
        code = res.stdout.strip()
        if not res.ok:
            raise StepFailed(
                f"{p.url} did not answer {p.status} within {p.timeout:g}s (last {code})"
            )
        self.detail = f"{p.url} answered {code} after {time.monotonic() - start:.1f}s"
        return None

    def apply(self, ctx: OpContext, change: Change) -> str:  # pragma: no cover - plan never asks
        raise AssertionError("wait_url never changes anything")


OPS: dict[str, type[Operation]] = {
    cls.name: cls for cls in (Package, Directory, File, Line, Command, ComposeUp, WaitUrl)
}
