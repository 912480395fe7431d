"""A target ``sshd`` that only a bastion can reach, for jump-host tests.

``HiddenSshServer`` runs ``sshd`` inside a network namespace of its own (``unshare --net``, its
loopback brought up there): it listens on ``ADDRESS:PORT`` in that namespace only, so from the
test process (and from penguinctl) a direct connection to it is refused: nothing listens there
in our namespace.

``BastionSshServer`` is the one way in: it listens on ``ADDRESS:PORT`` in the test's namespace
(a plain socket, accepted by a thread) and serves each connection with ``sshd -i`` (inetd mode)
started inside the hidden server's namespace (``nsenter --net``). Its forwarded
(``direct-tcpip``) connections therefore reach the hidden server, exactly as a bastion standing
in two networks would. Both use ``tests/sshd.py``'s configuration (keys only, ``home``,
``path_prefix``, ``LogLevel VERBOSE``); ``new_host_key()`` takes effect at the bastion's next
connection (each one starts a fresh ``sshd -i``). ``extra_config`` lines are appended to the
``sshd_config`` (e.g. ``AllowUsers nobody``).

``HiddenSshServer.expose(address, port)`` makes one TCP service of the test's namespace (e.g.
the MailU API double) reachable at the same ``address:port`` inside the hidden namespace: a
helper started there binds the listening socket and hands it back over a Unix socket pair
(``SCM_RIGHTS``); a thread of the test process accepts on it and relays each connection.

Needs root (network namespaces) and ``unshare``/``nsenter`` (util-linux) and ``ip``
(iproute2); a missing one fails the test under CI and skips it otherwise (tests/daemons.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from daemons import missing, need_binary
from sshd import STARTUP_TIMEOUT, STOP_TIMEOUT, SshServer, free_port


def _need_namespaces() -> None:
    if os.geteuid() != 0:
        missing("network namespaces need root (the bastion tests run as root, as sshd does)")


class HiddenSshServer(SshServer):
    """sshd in a network namespace of its own (see the module docstring)."""

    def __init__(self, *args: Any, extra_config: list[str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.extra_config = list(extra_config or [])
        self._exposed: list[socket.socket] = []

    def config_text(self) -> str:
        return super().config_text() + "".join(line + "\n" for line in self.extra_config)

    def expose(self, address: str, port: int) -> None:
        """Relay ``address:port`` inside the namespace to the same address in ours."""
        nsenter = need_binary("nsenter", "util-linux")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = (
            "import socket, sys\n"
            "s = socket.socket()\n"
            "s.bind((sys.argv[1], int(sys.argv[2])))\n"
            "s.listen(16)\n"
            "socket.send_fds(socket.socket(fileno=int(sys.argv[3])), [b'x'], [s.fileno()])\n"
        )
        with ours, theirs:
            argv = [nsenter, f"--net={self.netns}", sys.executable, "-c", code]
            subprocess.run(
                [*argv, address, str(port), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                check=True,
                timeout=STARTUP_TIMEOUT,
            )
            _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        listener = socket.socket(fileno=fds[0])
        self._exposed.append(listener)
        threading.Thread(target=_relay, args=(listener, (address, port)), daemon=True).start()

    def stop(self) -> None:
        for listener in self._exposed:
            listener.close()
        self._exposed = []
        super().stop()

    @property
    def netns(self) -> str:
        assert self.proc is not None, "not started"
        return f"/proc/{self.proc.pid}/ns/net"

    def start(self) -> HiddenSshServer:
        _need_namespaces()
        sshd = need_binary("sshd", "openssh-server")
        unshare = need_binary("unshare", "util-linux")
        ip = need_binary("ip", "iproute2")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        if not self.port:
            self.port = free_port(self.address)  # any port: the namespace is empty
        conf = self._write()
        check = subprocess.run([sshd, "-t", "-f", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t rejects {conf}:\n{check.stdout}{check.stderr}")
        log_path = self.workdir / "sshd.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        script = '"$0" link set lo up && exec "$1" -D -e -f "$2"'
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [unshare, "--net", "sh", "-c", script, ip, sshd, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        listening = re.compile(rf"Server listening on {re.escape(self.address)} port {self.port}")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if listening.search(self.log_text()[offset:]):
                return self
            time.sleep(0.02)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"hidden sshd did not start on {self.address}:{self.port}:\n{tail}")


class BastionSshServer(SshServer):
    """An inetd-style sshd in the test's namespace whose sessions live in ``inner``'s."""

    def __init__(
        self, *args: Any, inner: HiddenSshServer, extra_config: list[str] | None = None, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.inner = inner
        self.extra_config = list(extra_config or [])
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def config_text(self) -> str:
        return super().config_text() + "".join(line + "\n" for line in self.extra_config)

    def start(self) -> BastionSshServer:
        _need_namespaces()
        sshd = need_binary("sshd", "openssh-server")
        nsenter = need_binary("nsenter", "util-linux")
        if not self.port:
            self.port = free_port(self.address)
        conf = self._write()
        check = subprocess.run([sshd, "-t", "-f", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t rejects {conf}:\n{check.stdout}{check.stderr}")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.address, self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        argv = [nsenter, f"--net={self.inner.netns}", sshd, "-i", "-e", "-f", str(conf)]
        self._thread = threading.Thread(target=self._serve, args=(listener, argv), daemon=True)
        self._thread.start()
        return self

    def _serve(self, listener: socket.socket, argv: list[str]) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by stop()
                return
            conn.setblocking(True)  # the child reads and writes the descriptor itself
            with conn, open(self.workdir / "sshd.log", "ab") as log:
                child = subprocess.Popen(
                    argv, stdin=conn.fileno(), stdout=conn.fileno(), stderr=log, cwd=self.workdir
                )
            with self._lock:
                self._children = [c for c in self._children if c.poll() is None] + [child]

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            self._thread = None
        with self._lock:
            children, self._children = self._children, []
        for child in children:
            if child.poll() is None:
                child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=STOP_TIMEOUT)
            if child.poll() is None:
                child.kill()
                child.wait(timeout=STOP_TIMEOUT)


def _relay(listener: socket.socket, upstream: tuple[str, int]) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # closed by stop()
            return
        try:
            out = socket.create_connection(upstream, timeout=5)
        except OSError:
            conn.close()
            continue
        out.settimeout(None)
        for a, b in ((conn, out), (out, conn)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
