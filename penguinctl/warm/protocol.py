"""What the warm client and server share: where the socket is, and the messages.

Standard library only, and only its cheapest modules: the client imports this before every
command (no ``socket``, ``json`` or ``hashlib``: ~8 ms of imports, a fifth of a warm command).
A request is one frame: 4 bytes of length, then NUL-separated fields (POSIX argument, variable
and path strings hold no NUL): the argument count, the arguments, the variable count, the
variables as ``NAME=VALUE``, the working directory, the umask, and the encoding and error
handler of standard input, output and error. The caller's standard input, output and error go
with it as ``SCM_RIGHTS`` descriptors. The server answers with 1-byte tagged frames: ``P`` + the
child's pid, later ``X`` + its exit code; or ``S`` (stale: run the command yourself).
"""

from __future__ import annotations

import os
import struct
import sys
import zlib

from penguinctl import __version__

MAX_REQUEST = 1 << 20  # bytes of a request (its body)
REQUEST_TIMEOUT = 5.0  # seconds for a request to arrive whole
_LEN = struct.Struct("!I")
_INT = struct.Struct("!i")

# Commands that may run warm: they read and print, never prompt, never hold a lock for long.
# (first word, second word or None for any)
READ_ONLY: tuple[tuple[str, str | None], ...] = (
    ("get", None),
    ("describe", None),
    ("status", None),
    ("dkim", "status"),
)
# Global options that take a value (penguinctl.cli.GLOBAL_VALUED): skipped with it.
_VALUED = {"--output", "-o", "--state"}
# Environment that decides what the server imported or how (its locale, its import path).
KEY_ENV = ("LC_ALL", "LC_CTYPE", "LANG", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONPATH")


def enabled(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """``PENGUINCTL_WARM``: 0/off/false/no turns warm start off, 1/on/true/yes on; unset, it
    is on unless ``CI`` says this is a CI job."""
    value = environ.get("PENGUINCTL_WARM", "").strip().lower()
    if value in ("0", "off", "false", "no"):
        return False
    if value in ("1", "on", "true", "yes"):
        return True
    return environ.get("CI", "").strip().lower() in ("", "0", "false", "no")


def read_only(argv: list[str]) -> bool:
    """Whether the command line names a command that may run warm."""
    words: list[str] = []
    i = 0
    while i < len(argv) and len(words) < 2:
        arg = argv[i]
        if arg == "--":
            break
        if arg.startswith("-"):
            if arg in _VALUED:
                i += 1  # its value
        else:
            words.append(arg)
        i += 1
    if not words:
        return False
    first, second = words[0], (words[1] if len(words) > 1 else None)
    return any(first == a and (b is None or second == b) for a, b in READ_ONLY)


def runtime_dir() -> str | None:
    """A directory only this user can enter, created if needed; None when there is none."""
    uid = os.getuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        path = os.path.join(xdg, "penguinctl")
    else:
        path = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"penguinctl-{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if (st.st_mode & 0o170000) != 0o040000 or st.st_uid != uid or st.st_mode & 0o077:
        return None  # someone else's, or open to others: not ours to trust
    return path


def key() -> str:
    """The server this interpreter may use: same interpreter, import path, version, locale.
    (CRC-32 and Adler-32 of it, 64 bits: a name, not a secret; the directory is the user's.)"""
    parts = [sys.executable, __version__, *import_path()]
    parts += [f"{k}={os.environ.get(k, '')}" for k in KEY_ENV]
    data = "\0".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def import_path() -> list[str]:
    """``sys.path`` without the script's own directory (it differs: bin/ or the server's -P)."""
    path = list(sys.path)
    if (
        path
        and sys.argv
        and sys.argv[0]
        and os.path.dirname(os.path.abspath(sys.argv[0]))
        == (os.path.abspath(path[0]) if path[0] else "")
    ):
        path = path[1:]
    return [p for p in path if p]


def socket_path() -> str | None:
    """The socket of this installation's server, or None when warm start is not possible."""
    if sys.platform != "linux" or not hasattr(os, "pidfd_open"):
        return None  # SO_PEERCRED, pidfds and MADV_POPULATE_WRITE are Linux's
    d = runtime_dir()
    if d is None:
        return None
    path = os.path.join(d, f"warm-{key()}.sock")
    return path if len(path.encode()) < 104 else None  # sun_path's limit


def encode(request: Request) -> bytes:
    """The frame of ``request`` (length first)."""
    fields = [str(len(request.argv)), *request.argv, str(len(request.env))]
    fields += [f"{k}={v}" for k, v in request.env.items()]
    fields += [request.cwd, str(request.umask), *request.streams]
    data = "\0".join(fields).encode("utf-8", "surrogateescape")
    return _LEN.pack(len(data)) + data


def decode(data: bytes) -> Request:
    """The request of a frame's body; ValueError when it is not one."""
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    try:
        n = int(fields[0])
        argv = fields[1 : 1 + n]
        m = int(fields[1 + n])
        pairs = fields[2 + n : 2 + n + m]
        rest = fields[2 + n + m :]
        env = dict(p.split("=", 1) for p in pairs)
        cwd, umask, *streams = rest
        request = Request(argv, env, cwd, int(umask), streams)
    except (IndexError, ValueError) as exc:
        raise ValueError("malformed request") from exc
    if len(argv) != n or len(env) != m or len(streams) != 6 or not 0 <= request.umask <= 0o777:
        raise ValueError("malformed request")
    return request


class Request:
    """One command to run (a plain class: ``typing`` costs the client ~3 ms to import)."""

    __slots__ = ("argv", "cwd", "env", "streams", "umask")

    def __init__(
        self, argv: list[str], env: dict[str, str], cwd: str, umask: int, streams: list[str]
    ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.umask = umask
        self.streams = streams  # encoding, errors of stdin, stdout, stderr ("" when unknown)


def header_size(head: bytes) -> int:
    """The body size a frame's 4-byte head announces; ValueError when it is too large."""
    (size,) = _LEN.unpack(head)
    if size > MAX_REQUEST:
        raise ValueError(f"request of {size} bytes (at most {MAX_REQUEST})")
    return size


def recv_exact(sock, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def send_int(sock, tag: bytes, value: int) -> None:
    sock.sendall(tag + _INT.pack(value))


def recv_tagged(sock) -> tuple[bytes, int]:
    tag = recv_exact(sock, 1)
    if tag == b"S":
        return tag, 0
    (value,) = _INT.unpack(recv_exact(sock, _INT.size))
    return tag, value
