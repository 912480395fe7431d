"""A real Dovecot IMAP server for tests on 127.0.0.1 (Debian ``dovecot-imapd``).

``ImapServer(workdir, users={"a@x.example": "pw"}, security="none"|"tls")`` is a context
manager. It writes a self-contained ``dovecot.conf`` in ``workdir`` (base_dir, state_dir and
log inside it; no system paths are read but the binaries): passwd-file authentication with
plain passwords, one static virtual user (``nobody``: Dovecot refuses uid 0 for mail) whose
maildirs live in a private directory under /tmp (pytest's tmp_path is not traversable by
``nobody``), the internal and login processes as the Debian package's ``dovecot`` /
``dovenull`` users (``default_internal_user`` / ``default_login_user``), IMAP only, listening
on 127.0.0.1 and a random free port, implicit TLS with a generated certificate when
``security="tls"``. Dovecot runs in the foreground (``-F``) and is waited for until it answers.
``append(user, raw)`` places a message over IMAP APPEND (as the tests' "incoming mail").
A missing ``dovecot`` fails the test under CI=true and skips it otherwise.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from daemons import need_binary
from sshd import free_port

STARTUP_TIMEOUT = 20.0


class ImapServer:
    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str],
        security: str = "none",
        address: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.users = dict(users)
        self.security = security
        self.address = address
        self.port = free_port(address)
        self.cafile: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._mail: Path | None = None

    def _config(self) -> str:
        mail_user = "nobody"
        nobody = pwd.getpwnam(mail_user)
        self._mail = Path(tempfile.mkdtemp(prefix="penguinctl-imap-"))
        os.chmod(self._mail, 0o711)
        maildirs = self._mail / "m"
        maildirs.mkdir()
        os.chown(maildirs, nobody.pw_uid, nobody.pw_gid)
        users = self.workdir / "users"
        users.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        ssl_lines = "ssl = no\n"
        listener = (
            f"  inet_listener imap {{\n    address = {self.address}\n"
            f"    port = {self.port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n"
        )
        if self.security == "tls":
            from smtpsink import make_cert

            cert, key = make_cert(self.workdir)
            self.cafile = cert
            ssl_lines = f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}\n"
            listener = (
                f"  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n"
                f"    address = {self.address}\n    port = {self.port}\n    ssl = yes\n  }}\n"
            )
        return (
            f"base_dir = {self.workdir}/run\n"
            f"state_dir = {self.workdir}/state\n"
            f"log_path = {self.workdir}/dovecot.log\n"
            "protocols = imap\n"
            f"listen = {self.address}\n"
            f"{ssl_lines}"
            "disable_plaintext_auth = no\n"
            "auth_mechanisms = plain login\n"
            "default_internal_user = dovecot\n"
            "default_login_user = dovenull\n"
            f"first_valid_uid = {nobody.pw_uid}\n"
            f"mail_location = maildir:{maildirs}/%u\n"
            "passdb {\n  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {users}\n}}\n"
            "userdb {\n  driver = static\n"
            f"  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={maildirs}/%u\n}}\n"
            f"service imap-login {{\n{listener}}}\n"
            # the users file lives in pytest's private tmp_path: look it up as root
            "service auth {\n  user = root\n}\n"
        )

    def start(self) -> ImapServer:
        binary = need_binary("dovecot", "dovecot-imapd")
        need_binary("doveconf", "dovecot-core")
        (self.workdir / "run").mkdir(exist_ok=True)
        (self.workdir / "state").mkdir(exist_ok=True)
        conf = self.workdir / "dovecot.conf"
        conf.write_text(self._config())
        log = open(self.workdir / "dovecot.stderr", "w")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            try:
                with socket.create_connection((self.address, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dovecot did not start listening: {self.log()}")

    def log(self) -> str:
        parts = []
        for name in ("dovecot.stderr", "dovecot.log"):
            p = self.workdir / name
            if p.exists():
                parts.append(p.read_text()[-3000:])
        return "\n".join(parts)

    def client(self, user: str) -> imaplib.IMAP4:
        if self.security == "tls":
            ctx = ssl.create_default_context(cafile=str(self.cafile))
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(self.address, self.port, ssl_context=ctx)
        else:
            conn = imaplib.IMAP4(self.address, self.port)
        conn.login(user, self.users[user])
        return conn

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        conn = self.client(user)
        try:
            typ, data = conn.append(
                folder, None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            )
            assert typ == "OK", data
        finally:
            conn.logout()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        if self._mail is not None:
            shutil.rmtree(self._mail, ignore_errors=True)
            self._mail = None

    def __enter__(self) -> ImapServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
