"""A real OpenSSH ``sshd`` for tests, one per 127.0.0.x address (each a distinct "host").

``SshServer(workdir, "127.0.0.2", authorized_keys=[...])`` is a context manager. On entry it
writes, in ``workdir``: a host key (``ssh-keygen``; Ed25519 unless ``host_key_type``),
``authorized_keys`` and an ``sshd_config`` that listens ONLY on ``ADDRESS:PORT`` (a random
free high port) and allows public keys only (``PasswordAuthentication no``,
``KbdInteractiveAuthentication no``, ``UsePAM no``), with ``StrictModes no``, ``PidFile`` in
``workdir`` and the internal SFTP server. It then runs ``/usr/sbin/sshd -D -e -f sshd_config``
(foreground, as the current user: root in our test runs; log in ``workdir/sshd.log``) and waits
(bounded) until the port sends an SSH banner. On exit it terminates the server.
``stop()``, ``new_host_key()``, ``start()`` restarts it with a different host key on the same
address and port.

``home`` makes that directory the sessions' ``$HOME`` and reads keys from its
``.ssh/authorized_keys`` only (written once from ``authorized_keys``), so code that edits
``~/.ssh/authorized_keys`` (bootstrap, key rotation) changes who can log in.
``path_prefix`` puts a directory first on the sessions' PATH (``SetEnv``), e.g. for a ``sudo``
shim. A missing ``sshd`` or ``ssh-keygen`` fails the test under ``CI=true`` and skips it
otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from daemons import need_binary

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port(address: str) -> int:
    """A random high TCP port nothing listens on at ``address`` right now."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port found on {address}")


def keygen(path: Path, key_type: str = "ed25519", *, pem: bool = False) -> tuple[str, str]:
    """Generate a key pair at ``path`` (and ``path.pub``); returns (private text, public line)."""
    binary = need_binary("ssh-keygen", "openssh-client")
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    cmd = [binary, "-q", "-t", key_type, "-N", "", "-C", "penguinctl-test", "-f", str(path)]
    if key_type == "rsa":
        cmd[4:4] = ["-b", "2048"]
    if pem:
        cmd += ["-m", "PEM"]
    subprocess.run(cmd, check=True, capture_output=True)
    pub = path.with_name(path.name + ".pub").read_text(encoding="ascii").strip()
    return path.read_text(encoding="ascii"), pub


def fingerprint_of(public_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of an ``authorized_keys``-style public key line."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class SshServer:
    """A running ``sshd`` on ``address`` (use as a context manager)."""

    def __init__(
        self,
        workdir: Path,
        address: str,
        *,
        authorized_keys: Sequence[str],
        path_prefix: Path | None = None,
        host_key_type: str = "ed25519",
        home: Path | None = None,
    ) -> None:
        if not address.startswith("127."):
            raise ValueError("tests only ever listen on loopback addresses")
        self.workdir = Path(workdir)
        self.address = address
        self.authorized_keys = list(authorized_keys)
        self.path_prefix = path_prefix
        self.host_key_type = host_key_type
        self.home = Path(home) if home is not None else None
        self.port = 0
        self.host_key_public = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host_key_path(self) -> Path:
        return self.workdir / f"ssh_host_{self.host_key_type}_key"

    @property
    def host_key_b64(self) -> str:
        return self.host_key_public.split()[1]

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.host_key_public)

    def new_host_key(self) -> None:
        """A fresh host key (takes effect at the next ``start``)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        _, self.host_key_public = keygen(self.host_key_path, self.host_key_type)

    def config_text(self) -> str:
        d = self.workdir
        lines = [
            f"ListenAddress {self.address}:{self.port}",
            "AddressFamily inet",
            f"HostKey {self.host_key_path}",
            f"PidFile {d / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
        ]
        env = []
        if self.path_prefix is not None:
            env.append(f"PATH={self.path_prefix}:/usr/local/bin:/usr/bin:/bin:/usr/sbin")
        if self.home is not None:
            env.append(f"HOME={self.home}")
        if env:
            lines.append("SetEnv " + " ".join(env))
        return "\n".join(lines) + "\n"

    @property
    def authorized_keys_path(self) -> Path:
        """With ``home``, the session user's own ``~/.ssh/authorized_keys`` (so a key penguinctl
        installs or removes there takes effect); else a file in ``workdir``."""
        if self.home is not None:
            return self.home / ".ssh" / "authorized_keys"
        return self.workdir / "authorized_keys"

    def _write(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.host_key_public:
            self.new_host_key()
        keys = self.authorized_keys_path
        if self.home is None or not keys.exists():  # a home's file is the server's to change
            keys.parent.mkdir(parents=True, exist_ok=True)
            keys.write_text(
                "".join(k.strip() + "\n" for k in self.authorized_keys), encoding="ascii"
            )
        conf = self.workdir / "sshd_config"
        conf.write_text(self.config_text(), encoding="ascii")
        return conf

    def start(self) -> SshServer:
        """Start (or restart, keeping the address and port once chosen)."""
        binary = need_binary("sshd", "openssh-server")
        if not binary.startswith("/"):
            raise RuntimeError("sshd must be run by its absolute path")
        if os.geteuid() == 0:  # sshd's privilege separation directory, as its unit creates it
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        keep_port = bool(self.port)
        last = ""
        for _ in range(3):  # the random port may be taken between the check and sshd's bind()
            if not keep_port:
                self.port = free_port(self.address)
            conf = self._write()
            check = subprocess.run([binary, "-t", "-f", str(conf)], capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"sshd -t rejects {conf}:\n{check.stdout}{check.stderr}")
            with open(self.workdir / "sshd.log", "ab") as log:
                self.proc = subprocess.Popen(
                    [binary, "-D", "-e", "-f", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            try:
                if self._wait_ready():
                    return self
            except BaseException:
                self.stop()
                raise
            last = self.log_tail()
            self.stop()
            if "Address already in use" not in last or keep_port:
                break
        raise RuntimeError(f"sshd did not start on {self.address}:{self.port}:\n{last}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.address, self.port), timeout=1.0) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:  # refused until sshd listens
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def log_text(self) -> str:
        """Everything the server logged so far (every start appends)."""
        try:
            return (self.workdir / "sshd.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
