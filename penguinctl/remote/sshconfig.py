"""The operator's OpenSSH client configuration (``ssh_config(5)``) and SSH host strings.

Which file is read:

- ``PENGUINCTL_SSH_CONFIG=PATH``: only that file (as ``ssh -F PATH``); a missing file is an error;
- ``PENGUINCTL_SSH_CONFIG=none`` (or empty): no file at all (reproducible runs, CI);
- unset: ``~/.ssh/config`` then ``/etc/ssh/ssh_config``, as ``ssh`` reads them.

``Include`` lines are expanded in place, textually (globs; relative paths from ``~/.ssh``, or
``/etc/ssh`` in the system file; nesting at most 16 deep); everything else is parsed by
paramiko's ``SSHConfig`` and applied by ``fabric.Connection``: ``Host``/``Match`` blocks,
``HostName``, ``User``, ``Port``, ``IdentityFile``, ``IdentitiesOnly``, ``ProxyJump``.
``ProxyCommand`` is refused (use ``ProxyJump`` or the spec's ``ssh.via``): penguinctl pins every
hop's host key itself.

Host strings (a spec's ``ssh.via: ssh://...``, a ``ProxyJump`` entry) are
``[ssh://][user@]host[:port]``; ``host`` may be an IPv6 address in brackets, or a ``Host`` alias.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from penguinctl.errors import ConfigError

if TYPE_CHECKING:
    import paramiko

ENV_VAR = "PENGUINCTL_SSH_CONFIG"
SYSTEM_FILE = "/etc/ssh/ssh_config"
MAX_INCLUDE_DEPTH = 16
MAX_CONFIG_BYTES = 1 << 20  # a client config larger than 1 MiB is not a client config


@dataclass(frozen=True)
class HostString:
    """``[ssh://][user@]host[:port]`` taken apart (user and port None when not written)."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text


def parse_host_string(text: str) -> HostString:
    """Parse ``[ssh://][user@]host[:port]``; raises ``ValueError`` with a readable message."""
    raw = text.strip()
    rest = raw[len("ssh://") :] if raw.lower().startswith("ssh://") else raw
    rest = rest.rstrip("/")
    user: str | None = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not user:
            raise ValueError(f"{text!r}: empty user before '@'")
    port: int | None = None
    if rest.startswith("["):  # [v6]:port
        end = rest.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: unclosed '['")
        host, tail = rest[1:end], rest[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"{text!r}: unexpected text after ']'")
            port = _port(tail[1:], text)
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
        port = _port(port_text, text)
    else:
        host = rest
    if not host or any(c.isspace() or c in "/@,'\"\\" for c in host):
        raise ValueError(f"{text!r}: not a host name or address")
    if user is not None and any(c.isspace() or c in ":/'\"\\" for c in user):
        raise ValueError(f"{text!r}: not a user name")
    return HostString(host, user, port)


def _port(text: str, whole: str) -> int:
    if not text.isdecimal() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{whole!r}: port must be a number from 1 to 65535")
    return int(text)


def config_files(env: Mapping[str, str] | None = None) -> list[Path] | None:
    """The files to read, in order (None: the defaults), per ``PENGUINCTL_SSH_CONFIG``."""
    env = os.environ if env is None else env
    value = env.get(ENV_VAR)
    if value is None:
        return None
    value = value.strip()
    if value.lower() in ("", "none"):
        return []
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{ENV_VAR}={value}: no such file",
            hint="point it at an ssh_config(5) file, or set it to `none` to read none",
        )
    return [path]


def load(env: Mapping[str, str] | None = None) -> paramiko.SSHConfig:
    """The parsed client configuration (see the module docstring for which files)."""
    import paramiko

    env = os.environ if env is None else env
    home = Path(env.get("HOME") or "~").expanduser()
    files = config_files(env)
    if files is None:
        files = [home / ".ssh" / "config", Path(SYSTEM_FILE)]
    text = "".join(_expand(p, _include_base(p, home), 0) for p in files if p.is_file())
    config = paramiko.SSHConfig()
    try:
        config.parse(io.StringIO(text))
    except Exception as exc:  # paramiko raises ConfigParseError, or ValueError on odd lines
        where = ", ".join(str(p) for p in files)
        raise ConfigError(
            f"ssh client config ({where}) cannot be read: {' '.join(str(exc).split())[:200]}",
            hint=f"fix the file, or set {ENV_VAR}=none to ignore it",
        ) from None
    return config


def _include_base(path: Path, home: Path) -> Path:
    """Where a relative ``Include`` is looked up: ``/etc/ssh`` for the system file, else
    ``~/.ssh`` (as ``ssh`` does)."""
    return Path(SYSTEM_FILE).parent if str(path) == SYSTEM_FILE else home / ".ssh"


def _expand(path: Path, base: Path, depth: int) -> str:
    """The file's text with ``Include`` lines replaced by the files they name (textually)."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"ssh client config {path} is larger than 1 MiB")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"ssh client config {path} cannot be read: {exc.strerror}") from None
    out: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].lower() != "include":
            out.append(line)
            continue
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(f"ssh client config {path}: Include nested too deep")
        for pattern in words[1:]:
            pattern = os.path.expanduser(pattern.strip("\"'"))
            if not os.path.isabs(pattern):
                pattern = str(base / pattern)
            for found in sorted(glob.glob(pattern)):
                if os.path.isfile(found):
                    out.append(_expand(Path(found), base, depth + 1))
    return "\n".join(out) + "\n"
