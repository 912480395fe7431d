"""A real Postfix for tests (Debian ``postfix``), as a submission server on 127.0.0.1.

``PostfixServer(relay_port=N)`` is a context manager. It writes a self-contained instance in a
private directory under /tmp (Postfix's daemons run as ``postfix`` and must reach the queue;
pytest's tmp_path is not traversable by that user): ``main.cf`` (queue and data directories
inside it, ``maillog_file`` = ``<dir>/maillog`` through ``postlogd``, no local delivery,
``mynetworks`` = 127.0.0.0/8 may relay without AUTH, every message relayed to
``[127.0.0.1]:relay_port``: the tests' aiosmtpd sink) and a ``master.cf`` whose only listener is
``smtpd`` on 127.0.0.1 and a random free port. It runs ``postfix -c DIR start-fg`` (the master
in the foreground, a child of the test) and waits (bounded) until the port answers. On exit it
stops the instance and removes the directory. A missing ``postfix`` fails the test under
``CI=true`` and skips it otherwise.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from daemons import need_binary
from sshd import free_port

STARTUP_TIMEOUT = 30.0

MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixServer:
    def __init__(self, relay_port: int, *, hostname: str = "mx.postfix.test") -> None:
        self.binary = need_binary("postfix", "postfix")
        self.relay_port = relay_port
        self.hostname = hostname
        self.port = free_port("127.0.0.1")
        self.dir = Path(tempfile.mkdtemp(prefix="penguinctl-postfix-"))
        os.chmod(self.dir, 0o755)
        self.conf = self.dir / "conf"
        self.maillog = self.dir / "maillog"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write(self) -> None:
        queue, data = self.dir / "queue", self.dir / "data"
        for d in (self.conf, queue, data):
            d.mkdir(exist_ok=True)
        owner = pwd.getpwnam("postfix")
        os.chown(data, owner.pw_uid, owner.pw_gid)
        (self.conf / "main.cf").write_text(
            "\n".join(
                [
                    "compatibility_level = 3.6",
                    f"queue_directory = {queue}",
                    f"data_directory = {data}",
                    "mail_owner = postfix",
                    "setgid_group = postdrop",
                    f"myhostname = {self.hostname}",
                    "mydestination =",
                    "inet_interfaces = 127.0.0.1",
                    "inet_protocols = ipv4",
                    "mynetworks = 127.0.0.0/8",
                    "smtpd_relay_restrictions = permit_mynetworks, reject",
                    f"relayhost = [127.0.0.1]:{self.relay_port}",
                    f"maillog_file = {self.maillog}",
                    f"maillog_file_prefixes = {self.dir}",
                    "smtp_tls_security_level = none",
                    "smtpd_tls_security_level = none",
                    "alias_maps =",
                    "alias_database =",
                    "local_recipient_maps =",
                    "biff = no",
                    "",
                ]
            )
        )
        (self.conf / "master.cf").write_text(MASTER.format(port=self.port))

    def start(self) -> PostfixServer:
        self._write()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf), "start-fg"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postfix exited: {self.log_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"postfix did not answer on {self.port}: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return ""

    def queue_empty(self) -> bool:
        """No message waiting in the incoming, active or deferred queues."""
        queue = self.dir / "queue"
        return not any(
            f.is_file() for d in ("incoming", "active", "deferred") for f in (queue / d).rglob("*")
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(
                [self.binary, "-c", str(self.conf), "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> PostfixServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
