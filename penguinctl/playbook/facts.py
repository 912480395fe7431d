"""Facts: read-only probes of a host, each a small shell function plus a parser (pyinfra's idea).

A fact's ``SCRIPT`` is the body of a POSIX ``sh`` function that reads its own arguments
(``"$1"``, ``"$@"``): values are passed as arguments, never pasted into the script, so a path
with quotes or ``$(...)`` in it is only ever a path. ``FactCache`` runs any number of facts in
**one** SSH round trip (``gather``) and keeps their values until a step changes something they
depend on (``invalidate``): a fact with ``paths`` is dropped when one of those paths, or one of
their parents, is touched; a fact without (a command test, the package list) is dropped by any
change.
"""

from __future__ import annotations

import base64
import posixpath
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from penguinctl.remote.errors import SshError

T = TypeVar("T")
MISSING: Any = object()
MAX_CONTENT = 1024 * 1024  # FileContent reads files up to this size


class Fact(ABC, Generic[T]):
    """A probe. Subclasses set ``SCRIPT`` (a sh function body reading its arguments) and
    implement ``parse(stdout, rc)``; ``args`` are the function's arguments; ``paths`` the remote
    paths the value depends on (empty: it may depend on anything)."""

    SCRIPT: ClassVar[str]

    def __init__(self, *args: str) -> None:
        self.args: tuple[str, ...] = tuple(args)

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return (type(self).__name__, self.args)

    @property
    def paths(self) -> tuple[str, ...]:
        return ()

    @abstractmethod
    def parse(self, output: str, rc: int) -> T: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.args!r}"


class _PathFact(Fact[T]):
    @property
    def paths(self) -> tuple[str, ...]:
        return (self.args[0],)


@dataclass(frozen=True)
class FileInfo:
    mode: int
    owner: str
    group: str
    sha256: str = ""


OTHER = "other"  # the path exists but is not of the kind asked for


def _stat_line(text: str, with_hash: bool) -> FileInfo:
    parts = text.split()
    return FileInfo(int(parts[0], 8), parts[1], parts[2], parts[3] if with_hash else "")


class FileState(_PathFact["FileInfo | str | None"]):
    """A regular file's mode, owner, group and sha256; None when absent; ``OTHER`` when the
    path is something else (a directory, a device)."""

    SCRIPT = (
        'if [ -f "$1" ]; then s=$(stat -L -c "%a %U %G" -- "$1") && h=$(sha256sum -- "$1") '
        '&& echo "$s ${h%% *}"; elif [ -e "$1" ]; then echo other; else echo absent; fi'
    )

    def parse(self, output: str, rc: int) -> FileInfo | str | None:
        text = output.strip()
        if text == "absent":
            return None
        if text == OTHER:
            return OTHER
        return _stat_line(text, True)


class DirectoryState(_PathFact["FileInfo | str | None"]):
    """A directory's mode, owner and group; None when absent; ``OTHER`` when not a directory."""

    SCRIPT = (
        'if [ -d "$1" ]; then stat -L -c "%a %U %G" -- "$1"; '
        'elif [ -e "$1" ]; then echo other; else echo absent; fi'
    )

    def parse(self, output: str, rc: int) -> FileInfo | str | None:
        text = output.strip()
        if text in ("absent", OTHER):
            return None if text == "absent" else OTHER
        return _stat_line(text, False)


class Exists(_PathFact[bool]):
    SCRIPT = 'if [ -e "$1" ]; then echo yes; else echo no; fi'

    def parse(self, output: str, rc: int) -> bool:
        return output.strip() == "yes"


class FileContent(_PathFact["tuple[int, bytes] | str | None"]):
    """``(mode, content)`` of a regular file up to ``MAX_CONTENT`` bytes; None when absent;
    ``OTHER`` when not a regular file or larger."""

    SCRIPT = (
        'if [ -f "$1" ] && [ "$(stat -L -c %s -- "$1")" -le "$2" ]; then '
        'stat -L -c %a -- "$1" && base64 < "$1" | tr -d "\\n"; echo; '
        'elif [ -e "$1" ]; then echo other; else echo absent; fi'
    )

    def __init__(self, path: str) -> None:
        super().__init__(path, str(MAX_CONTENT))

    def parse(self, output: str, rc: int) -> tuple[int, bytes] | str | None:
        lines = output.strip().split("\n")
        if lines[0] in ("absent", OTHER):
            return None if lines[0] == "absent" else OTHER
        return int(lines[0], 8), base64.b64decode(lines[1] if len(lines) > 1 else "")


class TestPasses(Fact[bool]):
    """Whether shell text exits 0 (a ``command`` step's ``unless``). It must be read-only: it
    may run before earlier steps, in the batch; its value is dropped by any change."""

    # as `sh -c "$1"` would, in a subshell without positional parameters (a process fewer)
    SCRIPT = '(t=$1; set --; eval "$t") >/dev/null 2>&1 </dev/null; echo "$?"'

    def parse(self, output: str, rc: int) -> bool:
        return output.strip() == "0"


class DebPackages(Fact["set[str]"]):
    """Which of the named Debian packages are installed (``dpkg-query``; status ``ii``)."""

    SCRIPT = "dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' -- \"$@\" 2>/dev/null; true"

    def parse(self, output: str, rc: int) -> set[str]:
        installed = set()
        for line in output.splitlines():
            name, _, status = line.partition("\t")
            if status.startswith("ii"):
                installed.add(name.split(":")[0])
        return installed


# The bring-up hash of a compose project: the sha256 of the compose file, then of the env file.
COMPOSE_HASH = 'sha256sum -- "$1/$3" ${4:+"$1/$4"} 2>/dev/null | cut -c1-64 | tr "\\n" " "'
COMPOSE_RECORD = ".penguinctl-compose.sha256"


@dataclass(frozen=True)
class ComposeInfo:
    recorded: str  # hash recorded at the last bring-up ("" if none)
    current: str  # hash of the files now ("" if the compose file is missing)
    running: int  # containers running in the project

    @property
    def up_to_date(self) -> bool:
        return bool(self.current) and self.recorded == self.current and self.running > 0


class ComposeState(Fact[ComposeInfo]):
    """Args: project_dir, project, compose file, env file ("" for none)."""

    SCRIPT = (
        f'r=$(cat -- "$1/{COMPOSE_RECORD}" 2>/dev/null); '
        f'[ -f "$1/$3" ] && c=$({COMPOSE_HASH}) || c=; '
        'n=$(docker compose -p "$2" ps --status running -q 2>/dev/null | grep -c .); '
        'printf "%s\\n%s\\n%s\\n" "$r" "$c" "${n:-0}"'
    )

    def parse(self, output: str, rc: int) -> ComposeInfo:
        lines = [*output.split("\n"), "", "", ""]
        try:
            running = int(lines[2].strip() or 0)
        except ValueError:
            running = 0
        return ComposeInfo(lines[0].strip(), lines[1].strip(), running)


def batch_script(facts: Sequence[Fact[Any]], mark: str) -> tuple[str, list[str]]:
    """One sh script running every fact, each followed by ``\\n<mark> <index> <rc>\\n``, and the
    arguments to pass it (``sh -c SCRIPT sh ARGS...``)."""
    lines: list[str] = []
    args: list[str] = []
    for i, fact in enumerate(facts):
        refs = []
        for arg in fact.args:
            args.append(arg)
            refs.append(f'"${{{len(args)}}}"')
        lines.append(f"_f{i}() {{ {fact.SCRIPT}\n}}")
        lines.append(f"_f{i} {' '.join(refs)}; printf '\\n{mark} {i} %s\\n' \"$?\"")
    return "\n".join(lines), args


def parse_batch(output: str, facts: Sequence[Fact[Any]], mark: str) -> list[Any]:
    pieces = output.split(f"\n{mark} ")
    if len(pieces) != len(facts) + 1:
        raise ValueError(f"expected {len(facts)} fact outputs, got {len(pieces) - 1}")
    values = []
    for i, fact in enumerate(facts):
        text = pieces[i]
        if i:  # drop the "<index> <rc>\n" of the previous marker
            text = text.split("\n", 1)[1] if "\n" in text else ""
        header = pieces[i + 1].split("\n", 1)[0].split()
        values.append(fact.parse(text, int(header[1])))
    return values


def _under(parent: str, path: str) -> bool:
    parent = posixpath.normpath(parent)
    path = posixpath.normpath(path)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class FactCache:
    """Fact values for one host during one run. ``run(argv)`` is the connection's command runner
    (with sudo already applied); every method that needs the host costs one round trip."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self._values: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._facts: dict[tuple[str, tuple[str, ...]], Fact[Any]] = {}
        self.round_trips = 0

    def peek(self, fact: Fact[T]) -> T:
        """The cached value, or ``MISSING``."""
        return self._values.get(fact.key, MISSING)

    def get(self, fact: Fact[T]) -> T:
        value = self.peek(fact)
        if value is MISSING:
            self.gather([fact])
            value = self._values[fact.key]
        return value

    def gather(self, facts: Iterable[Fact[Any]]) -> None:
        """Fetch every fact not cached yet, in one round trip."""
        wanted: dict[tuple[str, tuple[str, ...]], Fact[Any]] = {}
        for fact in facts:
            if fact.key not in self._values:
                wanted.setdefault(fact.key, fact)
        if not wanted:
            return
        todo = list(wanted.values())
        mark = "@@penguinctl-" + secrets.token_hex(8)
        script, args = batch_script(todo, mark)
        self.round_trips += 1
        result = self._run(["sh", "-c", script, "sh", *args])
        try:
            values = parse_batch(result.stdout, todo, mark)
        except (ValueError, IndexError) as exc:
            err = result.stderr.strip().splitlines()[-1:] or [""]
            raise SshError(f"cannot read facts ({exc}): {err[0][:200]}".rstrip(": ")) from None
        for fact, value in zip(todo, values, strict=True):
            self._values[fact.key] = value
            self._facts[fact.key] = fact

    def invalidate(self, paths: Sequence[str] | None) -> None:
        """A step changed ``paths`` (None: it may have changed anything)."""
        for key in list(self._values):
            fact = self._facts[key]
            if (
                paths is None
                or not fact.paths
                or any(_under(p, t) for p in fact.paths for t in paths)
            ):
                del self._values[key]
