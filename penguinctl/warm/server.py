"""The warm server: imports once, forks a child per read-only command (see the package doc).

    python -P -m penguinctl.warm.server SOCKET     # started by the client, detached

One thread, no state store, no secrets: between requests it holds imported code, a listening
socket and one spare child (``Spare``) that takes the next connection itself, runs that command
and sends its client the exit code; the server forks the next spare and reaps its children
through pidfds in one ``selectors`` loop.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import os
import select
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from functools import partial

from penguinctl.warm import protocol
from penguinctl.warm.prefault import populate

DEFAULT_IDLE = 900.0  # seconds without a request before the server exits
# What the read-only commands import (protocol.READ_ONLY), so that their children do not.
# (The command modules, the CLI's tree and conventions come with ``build_app``, in preload.)
PRELOAD = (
    "penguinctl.cli.context",
    "penguinctl.cli.render",
    "penguinctl.cli.errors",
    "penguinctl.cli.client_mode",
    "penguinctl.settings",
    "penguinctl.masking",
    "penguinctl.clock",
    "penguinctl.state.db",
    "penguinctl.state.repo",
    "penguinctl.services.kinds",
    "penguinctl.services.resources",
    "penguinctl.rotation",
    "penguinctl.secrets",
    "penguinctl.services.context",
    "penguinctl.services.dkim",
    "penguinctl.plan.key_drift",
    "penguinctl.secret_layout",
    "penguinctl.secret_paths",
    "penguinctl.procs",
    "penguinctl.apiclient",
    "typer._click.decorators",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",
    "sqlalchemy.dialects.postgresql.psycopg",  # a PostgreSQL store
    "psycopg",
    "cryptography.fernet",
    "typer._adapters",
    "rich.console",
    "rich.table",
    "rich.markup",
    "rich._emoji_codes",
    "yaml",
    "alembic.command",  # `status` compares the store's migration with the code's
    "alembic.config",
)
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
# What a spare tells the server on the shared pipe: it took a connection / the code changed.
TOOK, STALE = b"a", b"s"
MAX_FAILED_SPARES = 3
ORPHAN_CHECK = 5.0  # seconds between a waiting spare's checks that its server is alive


def idle_limit() -> float:
    try:
        return max(1.0, float(os.environ.get("PENGUINCTL_WARM_IDLE", DEFAULT_IDLE)))
    except ValueError:
        return DEFAULT_IDLE


def preload(names: tuple[str, ...] = PRELOAD) -> None:
    """Import ``names``, every command module (the app a command line is parsed by imports
    them all) and configure the ORM's mappers: what each child would otherwise do first."""
    import importlib

    for name in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from sqlalchemy.orm import configure_mappers

    from penguinctl.cli import build_app

    build_app()  # only imports and registers; nothing runs
    configure_mappers()
    import gc

    gc.collect()
    gc.freeze()  # children's collections leave the imported objects (and their pages) alone


def fingerprint() -> tuple[tuple[str, int, int], ...]:
    """What must not change under a running server: penguinctl's imported files (an edit or
    an upgrade) and the directories of the import path (a package installed or removed)."""
    import penguinctl

    package = os.path.dirname(os.path.abspath(penguinctl.__file__)) + os.sep
    paths = [entry for entry in sys.path if entry]
    paths += [
        path
        for module in list(sys.modules.values())
        if (path := getattr(module, "__file__", None)) and path.startswith(package)
    ]
    return tuple(_stat(path) for path in paths)


def changed(baseline: tuple[tuple[str, int, int], ...]) -> bool:
    """Whether any path of ``baseline`` changed (or went) since it was taken."""
    return any(_stat(item[0]) != item for item in baseline)


def _stat(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_mtime_ns, st.st_size)


class Server:
    """The parent: holds the socket and keeps one spare child waiting on it.

    A spare (``Spare``) accepts the next connection itself, tells the server on a pipe, and
    becomes that command; the server forks the next spare at once and reaps the children
    through pidfds. The server never accepts, reads a request or runs a command.
    """

    def __init__(self, path: str, idle: float) -> None:
        self.path = path
        self.idle = idle
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.lock_fd: int | None = None
        self.notes_r, self.notes_w = os.pipe()
        self.spare: int | None = None  # pid of the child waiting for a connection
        self.children: dict[int, int] = {}  # pidfd -> pid
        self.fingerprint: tuple[tuple[str, int, int], ...] = ()
        self.stale = False
        self.failed_spares = 0  # in a row: spares that died before they took a connection
        self.pid = os.getpid()

    # -- lifetime ---------------------------------------------------------------------------

    def claim(self) -> bool:
        """The socket is this server's: it holds the lock beside it (another server that
        holds it is alive; a socket file without a lock holder is a dead server's)."""
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # `kill $(cat ...lock)` stops the server
        self.lock_fd = fd
        return True

    def listen(self) -> None:
        """Bind the socket (after the imports: a client that connects is answered at once)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        listener.setblocking(False)  # only spares accept, after select() says one is there
        self.listener = listener
        self.selector.register(self.notes_r, selectors.EVENT_READ, self.note)
        atexit.register(self.close)

    def close(self) -> None:
        """Stop taking commands: the socket goes (a new server may take its name), the spare
        is told to leave unless it already took a connection. Running commands go on."""
        if self.spare is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.spare, signal.SIGUSR1)
            self.spare = None
        if self.listener is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.listener.close()
            self.listener = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def serve(self) -> None:
        self.fingerprint = fingerprint()
        last = time.monotonic()
        while not self.stale:
            if self.spare is None:
                self.fork_spare()
            timeout = self.idle - (time.monotonic() - last)
            if timeout <= 0:
                return
            for key, _mask in self.selector.select(timeout=min(timeout, 30.0)):
                callback: Callable[[], None] = key.data
                if callback():
                    last = time.monotonic()

    def fork_spare(self) -> None:
        assert self.listener is not None
        pid = os.fork()
        if pid == 0:
            Spare(self).run()  # never returns
        self.spare = pid
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = pid
        self.selector.register(pidfd, selectors.EVENT_READ, lambda: self.reap(pidfd))

    def note(self) -> bool:
        """A spare took a connection (fork the next one) or found the code changed."""
        notes = os.read(self.notes_r, 512)
        for i in range(0, len(notes), 5):
            tag, pid = notes[i : i + 1], int.from_bytes(notes[i + 1 : i + 5], "big")
            if pid == self.spare:
                self.spare = None
            if tag == TOOK:
                self.failed_spares = 0
            if tag == STALE:
                self.stale = True
        return True

    def reap(self, pidfd: int) -> bool:
        pid = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        if pid == self.spare:  # it died waiting: the loop forks another, up to a point
            self.spare = None
            self.failed_spares += 1
            if self.failed_spares >= MAX_FAILED_SPARES:
                self.stale = True  # something is wrong with this server: leave it to a new one
        return False


class Spare:
    """A child waiting on the socket with its own copy of the server's memory."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.taken = False

    def run(self) -> None:
        code = 1
        try:
            code = self._run()
        except BaseException:  # pragma: no cover - a bug here; the client sees no exit code
            with contextlib.suppress(Exception):
                import traceback

                traceback.print_exc()
        finally:
            _flush()
            os._exit(code)

    def _leave(self, _signum, _frame) -> None:
        if not self.taken:  # told to go before it took a connection: nobody is waiting
            os._exit(0)

    def _accept(self, listener: socket.socket) -> socket.socket:
        """The next connection; the spare leaves if its server died meanwhile (nobody would
        fork the next spare or stop this one)."""
        while True:
            if _readable(listener, ORPHAN_CHECK):
                try:
                    return listener.accept()[0]
                except BlockingIOError:
                    continue  # the client gave up in between
            if os.getppid() != self.server.pid:
                os._exit(0)

    def _run(self) -> int:
        server = self.server
        listener = server.listener
        assert listener is not None
        signal.signal(signal.SIGUSR1, self._leave)
        server.selector.close()
        for pidfd in server.children:
            os.close(pidfd)
        if server.lock_fd is not None:
            os.close(server.lock_fd)
        os.close(server.notes_r)
        atexit.unregister(server.close)
        # Made ready while nobody waits: the command tree first (~4 ms of every run), then the
        # memory (prefault); a request that arrives meanwhile is taken at once.
        waiting = partial(_readable, listener)
        command = prepare()
        if not waiting():
            populate(stop=waiting)
        conn = self._accept(listener)
        self.taken = True
        listener.close()
        os.write(server.notes_w, TOOK + os.getpid().to_bytes(4, "big"))
        _pid, uid, _gid = _PEERCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        if uid != os.getuid():
            return 1
        conn.settimeout(protocol.REQUEST_TIMEOUT)
        request, fds = recv_request(conn)
        if changed(server.fingerprint):
            os.write(server.notes_w, STALE + os.getpid().to_bytes(4, "big"))
            conn.sendall(b"S")  # the client runs it itself; the next one starts a new server
            return 0
        os.close(server.notes_w)
        protocol.send_int(conn, b"P", os.getpid())
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        become(request)
        code = run_command(command)
        _flush()  # all output written before the client hears the exit code
        with contextlib.suppress(OSError):
            conn.settimeout(protocol.REQUEST_TIMEOUT)
            protocol.send_int(conn, b"X", code)
        return code


def recv_request(sock: socket.socket) -> tuple[protocol.Request, list[int]]:
    """One request and the descriptors that came with it (its first bytes carry them)."""
    head, fds, _flags, _addr = socket.recv_fds(sock, 4, 3)
    try:
        if len(head) < 4:
            head += protocol.recv_exact(sock, 4 - len(head))
        request = protocol.decode(protocol.recv_exact(sock, protocol.header_size(head)))
        if len(fds) != 3:
            raise ValueError("a request comes with three descriptors")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _readable(sock: socket.socket, timeout: float = 0) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def become(request: protocol.Request) -> None:
    """Take on the client's environment, directory, umask, streams and command line."""
    os.environ.clear()
    os.environ.update(request.env)
    time.tzset()
    os.chdir(request.cwd)
    os.umask(request.umask)
    enc = request.streams
    sys.stdin = _stream(0, "r", enc[0], enc[1], line=False)
    sys.stdout = _stream(1, "w", enc[2], enc[3], line=os.isatty(1))
    sys.stderr = _stream(2, "w", enc[4], enc[5], line=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    sys.argv = ["penguinctl", *request.argv]


def _stream(fd: int, mode: str, encoding: str, errors: str, *, line: bool) -> io.TextIOWrapper:
    """A standard stream on ``fd`` with the client's encoding and error handler."""
    return io.TextIOWrapper(
        open(fd, mode + "b", closefd=False),  # open until the process exits
        encoding=encoding or "utf-8",
        errors=errors or "strict",
        line_buffering=line,
    )


def prepare() -> object:
    """The command tree with the read-only commands built: what every run builds first,
    whatever its command line (``penguinctl.cli.tree`` builds a command on first use)."""
    from penguinctl.cli import build_command

    root = build_command()
    for name in sorted({first for first, _ in protocol.READ_ONLY}):
        _ = root.commands[name]  # built now, not in the child
    return root


def run_command(command: object = None) -> int:
    """The console script's run, with its exit status as a number."""
    from penguinctl.cli import main

    try:
        main(command=command)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code & 0xFF
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -P -m penguinctl.warm.server SOCKET", file=sys.stderr)
        return 2
    server = Server(args[0], idle_limit())
    if not server.claim():
        return 0  # another server holds this socket
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload()
    try:
        server.listen()
        server.serve()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
