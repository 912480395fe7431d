"""What the warm client and server share: where the socket is, and the messages.

Standard library only (the client imports this before anything else). A request is one frame:
4 bytes of length, then JSON ``{"argv", "env", "cwd", "umask", "streams"}``, sent with the
caller's standard input, output and error as ``SCM_RIGHTS`` descriptors. The server answers
with 1-byte tagged frames: ``P`` + the child's pid, later ``X`` + its exit code; or ``S`` (stale:
run the command yourself).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import sys

from penguinctl import __version__

MAX_REQUEST = 1 << 20  # bytes of JSON
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
    import stat

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return None  # someone else's, or open to others: not ours to trust
    return path


def key() -> str:
    """The server this interpreter may use: same interpreter, import path, version, locale."""
    h = hashlib.sha256()
    parts = [sys.executable, __version__, *import_path()]
    parts += [f"{k}={os.environ.get(k, '')}" for k in KEY_ENV]
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:20]


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
    if not hasattr(socket, "AF_UNIX") or not hasattr(os, "pidfd_open"):
        return None
    d = runtime_dir()
    if d is None:
        return None
    path = os.path.join(d, f"warm-{key()}.sock")
    return path if len(path.encode()) < 104 else None  # sun_path's limit


def encode(obj: object) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode("utf-8", "surrogateescape")
    return _LEN.pack(len(data)) + data


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_request(sock: socket.socket) -> tuple[dict, list[int]]:
    """One request and the descriptors that came with it (its first bytes carry them)."""
    head, fds, _flags, _addr = socket.recv_fds(sock, _LEN.size, 3)
    try:
        if len(head) < _LEN.size:
            head += recv_exact(sock, _LEN.size - len(head))
        (size,) = _LEN.unpack(head)
        if size > MAX_REQUEST:
            raise ValueError(f"request of {size} bytes (at most {MAX_REQUEST})")
        request = json.loads(recv_exact(sock, size).decode("utf-8", "surrogateescape"))
        if not isinstance(request, dict) or len(fds) != 3:
            raise ValueError("malformed request")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def send_int(sock: socket.socket, tag: bytes, value: int) -> None:
    sock.sendall(tag + _INT.pack(value))


def recv_tagged(sock: socket.socket) -> tuple[bytes, int]:
    tag = recv_exact(sock, 1)
    if tag == b"S":
        return tag, 0
    (value,) = _INT.unpack(recv_exact(sock, _INT.size))
    return tag, value
