"""A small SSH server for tests that accepts ONE username/password, like a freshly ordered VPS
whose provider hands out a root password (Hostwinds), built on paramiko's server API.

``PasswordSshServer("127.0.0.31", username="root", password="...", home=dir)`` is a context
manager. On entry it generates an ECDSA host key and listens ONLY on ``address`` (a free port
chosen by the kernel, ``.port``), one thread per connection. It accepts:

- password authentication with exactly the given username and password;
- public-key authentication for that username with a key listed in
  ``home/.ssh/authorized_keys`` (read at each attempt), as the provider's own sshd would once a
  key is installed;
- ``exec`` requests only: the command runs locally as ``sh -c COMMAND`` with ``HOME=home`` (so
  ``~/.ssh/authorized_keys`` is the same file ``tests/sshd.py`` reads when started with that
  ``home=``) and ``path_prefix`` first on ``PATH``; stdin is forwarded until the client's EOF,
  stdout and stderr are sent back, then the exit status. No shell, no SFTP, no forwarding.

``logins`` records the method of every successful login ("password" / "publickey"),
``failed_passwords`` counts rejected passwords. On exit the listener and every open connection
are closed and the threads joined.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import paramiko

JOIN_TIMEOUT = 10.0


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: PasswordSshServer) -> None:
        self.server = server

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == self.server.username and password == self.server.password:
            self.server._record("password")
            return paramiko.AUTH_SUCCESSFUL
        with self.server._lock:
            self.server.failed_passwords += 1
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self.server.username and self.server._authorized(key):
            self.server._record("publickey")
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        thread = threading.Thread(
            target=self.server._exec, args=(channel, command.decode("utf-8")), daemon=True
        )
        self.server._threads.append(thread)
        thread.start()
        return True


class PasswordSshServer:
    """A running password-accepting SSH server on ``address`` (use as a context manager)."""

    def __init__(
        self,
        address: str,
        *,
        username: str,
        password: str,
        home: Path,
        path_prefix: Path | None = None,
    ) -> None:
        if not address.startswith("127."):
            raise ValueError("tests only ever listen on loopback addresses")
        self.address = address
        self.username = username
        self.password = password
        self.home = Path(home)
        self.path_prefix = path_prefix
        self.port = 0
        self.host_key = paramiko.ECDSAKey.generate()
        self.logins: list[str] = []
        self.failed_passwords = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._transports: list[paramiko.Transport] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> PasswordSshServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, 0))
        sock.listen(16)
        sock.settimeout(0.1)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._stop.clear()
        accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._threads.append(accept)
        accept.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> PasswordSshServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host_key_line(self) -> tuple[str, str]:
        return self.host_key.get_name(), self.host_key.get_base64()

    # -- internals ---------------------------------------------------------------------------
    def _record(self, method: str) -> None:
        with self._lock:
            self.logins.append(method)

    def _authorized(self, key: paramiko.PKey) -> bool:
        try:
            lines = (self.home / ".ssh" / "authorized_keys").read_text().splitlines()
        except OSError:
            return False
        want = (key.get_name(), key.get_base64())
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and (parts[0], parts[1]) == want:
                try:
                    base64.b64decode(parts[1], validate=True)
                except ValueError:
                    continue
                return True
        return False

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            with self._lock:
                if self._stop.is_set():
                    transport.close()
                    return
                self._transports.append(transport)
            try:
                transport.start_server(server=_Interface(self))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()
                continue
            # sessions are served by check_channel_exec_request; the transport's accept queue
            # keeps each channel referenced (paramiko closes a channel that is garbage collected)

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        env = dict(os.environ, HOME=str(self.home))
        if self.path_prefix is not None:
            env["PATH"] = f"{self.path_prefix}:{env.get('PATH', '/usr/bin:/bin')}"
        try:
            proc = subprocess.Popen(
                ["sh", "-c", command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.home,
            )
        except OSError:
            channel.send_exit_status(127)
            channel.close()
            return
        assert proc.stdin and proc.stdout and proc.stderr

        def feed() -> None:
            try:
                while True:
                    data = channel.recv(65536)
                    if not data:
                        break
                    proc.stdin.write(data)
                    proc.stdin.flush()
            except (OSError, EOFError, paramiko.SSHException):
                pass
            finally:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

        def pump(stream, send) -> None:
            for chunk in iter(lambda: stream.read1(65536), b""):
                try:
                    send(chunk)
                except (OSError, EOFError, paramiko.SSHException):
                    break

        workers = [
            threading.Thread(target=feed, daemon=True),
            threading.Thread(target=pump, args=(proc.stdout, channel.sendall), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, channel.sendall_stderr), daemon=True),
        ]
        for w in workers:
            w.start()
        rc = proc.wait()
        for w in workers[1:]:
            w.join(JOIN_TIMEOUT)
        try:
            channel.send_exit_status(rc)
            channel.shutdown_write()
            # Leave the close to the client, as it follows the exit status: paramiko sends the
            # exec request's success reply only after check_channel_exec_request returns, and
            # a command as short as `true` can finish first; a CLOSE that overtakes the reply
            # reads as "Channel closed" to the client (seen under load in CI).
            deadline = time.monotonic() + JOIN_TIMEOUT
            while not channel.closed and time.monotonic() < deadline:
                time.sleep(0.01)
            channel.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass
        workers[0].join(JOIN_TIMEOUT)
