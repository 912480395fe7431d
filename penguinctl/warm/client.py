"""The warm client: run a read-only command in the warm server's child, or say it did not.

Standard library only, and its cheapest parts (``_socket``, not ``socket``, which imports
``selectors`` and ``enum``): this runs before every command.
"""

from __future__ import annotations

import _socket
import os
import signal
import struct
import sys

from penguinctl.warm import protocol

CONNECT_TIMEOUT = 1.0  # seconds; a live server accepts at once
# Seconds for the server to fork (or refuse). Once the request is sent the client never runs
# the command itself unless the server said it did not (no chance of running it twice).
ANSWER_TIMEOUT = 30.0
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def run(argv: list[str]) -> int | None:
    """The command's exit code when it ran warm; None when the caller must run it itself
    (not a read-only command, warm start off or impossible, or the server stale or absent;
    then a server is started for the next command)."""
    if not protocol.enabled() or not protocol.read_only(argv):
        return None
    path = protocol.socket_path()
    if path is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(path)
        except OSError:
            start_server(path)
            return None
        return _run_warm(sock, argv)
    finally:
        sock.close()


def _run_warm(sock: _socket.socket, argv: list[str]) -> int | None:
    streams: list[str] = []
    for s in (sys.stdin, sys.stdout, sys.stderr):
        streams += [getattr(s, "encoding", None) or "", getattr(s, "errors", None) or ""]
    request = protocol.Request(argv, dict(os.environ), os.getcwd(), _umask(), streams)
    try:
        for s in (sys.stdout, sys.stderr):
            if s is not None:
                s.flush()
        data = protocol.encode(request)
        fds = struct.pack("3i", 0, 1, 2)
        sock.sendmsg([data[:4]], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        sock.sendall(data[4:])
    except OSError:
        return None  # the server went away before it read the request: run it here
    try:
        sock.settimeout(ANSWER_TIMEOUT)
        tag, pid = protocol.recv_tagged(sock)
    except EOFError:
        return None  # the server closed the connection without forking: run it here
    except OSError as exc:
        print(
            f"error: the warm server did not answer ({exc}); set PENGUINCTL_WARM=0 to "
            "run without it",
            file=sys.stderr,
        )
        return 1
    if tag == b"S":
        return None
    forwarded: list[int] = []
    previous = _forward_signals(pid, forwarded)
    sock.settimeout(None)
    try:
        while True:
            try:
                tag, code = protocol.recv_tagged(sock)
                return code
            except InterruptedError:
                continue
            except (OSError, EOFError):
                if forwarded:  # it died of the signal it was sent: what a shell reports
                    return 128 + forwarded[-1]
                print(
                    f"error: the command (warm, pid {pid}) ended without an exit status; "
                    "set PENGUINCTL_WARM=0 to run without warm start",
                    file=sys.stderr,
                )
                return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _forward_signals(pid: int, forwarded: list[int]) -> dict:
    def forward(signum, _frame) -> None:
        forwarded.append(signum)
        try:  # noqa: SIM105 - contextlib would cost every command an import
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # it has just ended: its exit status is on its way

    previous = {}
    for name in FORWARDED:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, forward)
    return previous


def start_server(path: str) -> None:
    """Start a server for ``path`` in the background (detached; it exits when idle)."""
    import subprocess

    keep = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "XDG_RUNTIME_DIR", *protocol.KEY_ENV)
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYDANTIC_DISABLE_PLUGINS"] = os.environ.get("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if "PENGUINCTL_WARM_IDLE" in os.environ:
        env["PENGUINCTL_WARM_IDLE"] = os.environ["PENGUINCTL_WARM_IDLE"]
    try:  # noqa: SIM105 - contextlib would cost every command an import
        subprocess.Popen(
            [sys.executable, "-P", "-m", "penguinctl.warm.server", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd="/",
        )
    except OSError:
        pass  # no server this time: the command runs all the same
