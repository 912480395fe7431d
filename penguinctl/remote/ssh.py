"""An SSH transport on paramiko: one authenticated session to ``user@host:port``.

Contract:
- Authentication uses only the private key given (PEM or OpenSSH text, e.g. from the secrets
  backend): no agent, no ``~/.ssh`` keys. The key text is parsed once in the constructor and
  then dropped; it never appears in a message, a log line or a ``repr``. The one exception is
  the bootstrap's first contact with a provider's server (``penguinctl.remote.bootstrap``):
  ``private_key=None`` with ``password=`` (a ``SecretValue`` or str) authenticates with that
  password only; it is registered for masking and never shown either.
- The server's host key is checked against ``host_keys`` before authentication: pinned on first
  contact, a changed key raises ``HostKeyChanged`` and nothing is executed.
- Connection set-up is retried ``SshOptions.retries`` times with exponential backoff on transient
  failures (refused, timed out, reset, no banner); an authentication failure or a changed host
  key is never retried. After the retries ``SshUnreachable`` is raised.
- ``run`` returns a ``Result`` whatever the exit code; ``check=True`` raises
  ``RemoteCommandFailed`` on a non-zero one. A command running past its timeout raises
  ``CommandTimeout`` after closing its channel (the remote process may then live until it next
  writes to the closed pipe).
- Commands are logged (DEBUG, logger ``penguinctl.remote``) by program name only; pass secrets on
  ``stdin``, never in arguments (those are visible in ``ps`` on the server).

One connection is used by one thread at a time; fan-out opens one per host.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import posixpath
import secrets
import select
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paramiko

from penguinctl.remote.command import Command, Result, build_command, program_name
from penguinctl.remote.errors import (
    CommandTimeout,
    RemoteCommandFailed,
    SshAuthFailed,
    SshError,
    SshKeyInvalid,
    SshUnreachable,
)
from penguinctl.remote.hostkeys import HostKeyStore, PinningPolicy, changed_error

log = logging.getLogger("penguinctl.remote")

_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)

# Prints the octal mode then the sha256 of regular file $1, or "absent".
_STATE_SCRIPT = 'if [ -f "$1" ]; then stat -c %a -- "$1" && sha256sum -- "$1"; else echo absent; fi'
# Copies $1 over $2 atomically (temp file in the target directory, then rename) with mode $3.
_INSTALL_SCRIPT = (
    'set -e; t=$(mktemp "$(dirname -- "$2")/.penguinctl.XXXXXX"); '
    "trap 'rm -f -- \"$t\"' EXIT; "
    'cat -- "$1" > "$t"; chmod -- "$3" "$t"; mv -f -- "$t" "$2"'
)


@dataclass(frozen=True)
class SshOptions:
    """Timeouts in seconds. ``connect_timeout`` bounds the TCP connect, ``banner_timeout`` the
    wait for the server's banner, ``auth_timeout`` the authentication, ``command_timeout`` each
    command (overridable per ``run``). ``retries`` extra connect attempts, sleeping
    ``backoff * 2**n`` before each."""

    connect_timeout: float = 10.0
    banner_timeout: float = 15.0
    auth_timeout: float = 15.0
    command_timeout: float = 300.0
    retries: int = 2
    backoff: float = 0.5
    keepalive: int = 30


def load_private_key(text: Any, passphrase: str | None = None) -> paramiko.PKey:
    """Parse an Ed25519, ECDSA or RSA private key given as PEM/OpenSSH text (a ``str`` or a
    ``SecretValue``). Raises ``SshKeyInvalid`` with a message that never quotes the text."""
    raw = text.reveal() if hasattr(text, "reveal") else text
    if not isinstance(raw, str) or not raw.strip():
        raise SshKeyInvalid("SSH private key is empty or not text")
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(raw), password=passphrase)
        except Exception:  # any parse failure: try the next type (details may quote the key)
            continue
    raise SshKeyInvalid(
        "SSH private key could not be loaded (not an RSA, ECDSA or Ed25519 key in PEM or "
        "OpenSSH format, or encrypted without the right passphrase)",
        hint="check the secret the server's ssh key comes from",
    )


def _password_text(value: Any) -> str:
    """The password as text, registered for masking (``SecretValue.reveal`` does that)."""
    if hasattr(value, "reveal"):
        raw = value.reveal()
    else:
        from penguinctl.masking import registry

        raw = value
        if isinstance(raw, str):
            registry().add(raw)
    if not isinstance(raw, str) or not raw:
        raise SshKeyInvalid("SSH password is empty or not text")
    return raw


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class SshConnection:
    """A lazily opened SSH session; use as a context manager or call ``close()``."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        private_key: Any,
        *,
        host_keys: HostKeyStore,
        options: SshOptions | None = None,
        passphrase: str | None = None,
        password: Any = None,
    ) -> None:
        self.host, self.port, self.user = host, int(port), user
        self.host_keys = host_keys
        self.options = options or SshOptions()
        self._pkey: paramiko.PKey | None = None
        self._password: str | None = None
        if private_key is None and password is not None:  # bootstrap's first contact only
            self._password = _password_text(password)
        else:
            self._pkey = load_private_key(private_key, passphrase)
        self._client: paramiko.SSHClient | None = None
        self._sftp_client: paramiko.SFTPClient | None = None

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"SshConnection({self.target})"

    # -- session -----------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the session if it is not open (and alive). Raises ``SshUnreachable``,
        ``SshAuthFailed`` or ``HostKeyChanged``."""
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return
            self.close()
        last: BaseException | None = None
        for attempt in range(self.options.retries + 1):
            if attempt:
                time.sleep(self.options.backoff * 2 ** (attempt - 1))
            try:
                self._client = self._open()
                return
            except socket.gaierror as exc:
                raise SshUnreachable(f"ssh {self.target}: {_one_line(exc)}") from None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last = exc
                log.debug("ssh %s: attempt %d failed: %s", self.target, attempt + 1, exc)
        raise SshUnreachable(
            f"ssh {self.target}: unreachable after {self.options.retries + 1} attempts: "
            f"{_one_line(last) if last else 'unknown error'}",
            hint="check that the server is up and its SSH port is reachable",
        )

    def _open(self) -> paramiko.SSHClient:
        opts = self.options
        client = paramiko.SSHClient()
        pinned = self.host_keys.get(self.host, self.port)
        if pinned is not None:  # makes paramiko negotiate the pinned key type
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            key = paramiko.PKey.from_type_string(pinned[0], base64.b64decode(pinned[1]))
            client.get_host_keys().add(name, pinned[0], key)
        client.set_missing_host_key_policy(PinningPolicy(self.host_keys, self.host, self.port))
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                pkey=self._pkey,
                password=self._password,
                timeout=opts.connect_timeout,
                banner_timeout=opts.banner_timeout,
                auth_timeout=opts.auth_timeout,
                channel_timeout=opts.connect_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            assert pinned is not None
            offered = (exc.key.get_name(), exc.key.get_base64())
            raise changed_error(self.host, self.port, pinned, offered) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise SshAuthFailed(
                f"ssh {self.target}: authentication failed: {_one_line(exc)}",
                hint="check the provider's initial password for the server"
                if self._pkey is None
                else "check that the server's authorized_keys holds the public half of the key",
            ) from None
        except BaseException:  # HostKeyChanged from the policy, state store errors
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None and opts.keepalive:
            transport.set_keepalive(opts.keepalive)
        log.debug("ssh %s: connected", self.target)
        return client

    def close(self) -> None:
        sftp, self._sftp_client = self._sftp_client, None
        client, self._client = self._client, None
        if sftp is not None:
            sftp.close()
        if client is not None:
            client.close()

    def __enter__(self) -> SshConnection:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _transport(self) -> paramiko.Transport:
        self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None:
            raise SshError(f"ssh {self.target}: connection lost")
        return transport

    def _sftp(self) -> paramiko.SFTPClient:
        self.connect()
        if self._sftp_client is None:
            assert self._client is not None
            self._sftp_client = self._client.open_sftp()
        return self._sftp_client

    # -- commands ----------------------------------------------------------------------------
    def run(
        self,
        command: Command,
        *,
        sudo: bool = False,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        """Run ``command`` (a list is quoted argument by argument; a str is shell text, see
        ``penguinctl.remote.command``) and wait for it. ``stdin`` is sent then closed (empty
        input when None). Raises ``CommandTimeout`` past ``timeout`` (default
        ``options.command_timeout``), ``RemoteCommandFailed`` on a non-zero exit with
        ``check``, ``SshError`` if the connection drops."""
        wire = build_command(command, sudo=sudo)
        prog = program_name(command)
        limit = self.options.command_timeout if timeout is None else timeout
        transport = self._transport()
        start = time.monotonic()
        deadline = start + limit
        try:
            chan = transport.open_session(timeout=self.options.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(f"ssh {self.target}: cannot open a session: {_one_line(exc)}") from None
        try:
            chan.exec_command(wire)
            if stdin is not None:
                chan.settimeout(max(0.001, deadline - time.monotonic()))
                chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            chan.shutdown_write()
            out, err = self._collect(chan, deadline)
            rc = chan.recv_exit_status()
        except TimeoutError:
            raise CommandTimeout(
                f"ssh {self.target}: `{prog}` did not finish within {limit:g}s",
                hint="raise the command timeout or check the server",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(f"ssh {self.target}: `{prog}`: {_one_line(exc)}") from None
        finally:
            chan.close()
        duration = time.monotonic() - start
        log.debug("ssh %s: %s%s -> %d (%.3fs)", self.target, "sudo " * sudo, prog, rc, duration)
        result = Result(
            rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), duration
        )
        if check and rc != 0:
            detail = result.stderr.strip().splitlines()[-1:] or [""]
            raise RemoteCommandFailed(
                f"ssh {self.target}: `{prog}` exited {rc}: {detail[0][:200]}".rstrip(": ")
            )
        return result

    @staticmethod
    def _collect(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes]:
        """Read stdout and stderr until the command exits; ``TimeoutError`` past ``deadline``.
        The channel's pipe wakes ``select`` on stdout data and on close; stderr-only output is
        picked up by the short poll."""
        out, err = bytearray(), bytearray()
        while True:
            busy = False
            if chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
            if busy:
                continue
            ended = chan.closed or chan.eof_received  # everything sent is buffered by now
            if ended and chan.exit_status_ready():
                return bytes(out), bytes(err)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if ended:  # the pipe stays readable after EOF: wait for the exit status instead
                chan.status_event.wait(min(remaining, 0.05))
            else:
                select.select([chan], [], [], min(remaining, 0.05))

    # -- files -------------------------------------------------------------------------------
    def file_state(self, path: str, *, sudo: bool = False) -> tuple[int, str] | None:
        """``(mode, sha256 hex)`` of the regular file at ``path``, None when there is none."""
        res = self.run(["sh", "-c", _STATE_SCRIPT, "sh", path], sudo=sudo, check=True)
        lines = res.stdout.split("\n")
        if lines[0].strip() == "absent":
            return None
        try:
            return int(lines[0].strip(), 8), lines[1].split()[0]
        except (ValueError, IndexError):
            raise SshError(f"ssh {self.target}: unexpected output from stat on {path}") from None

    def checksum(self, path: str, *, sudo: bool = False) -> str | None:
        """The sha256 (hex) of the remote file, or None when it does not exist."""
        state = self.file_state(path, sudo=sudo)
        return None if state is None else state[1]

    def put_file(self, path: str, data: bytes, mode: int = 0o644, *, sudo: bool = False) -> bool:
        """Make ``path`` hold exactly ``data`` with ``mode``; returns False (and writes nothing)
        when it already does. The write is atomic: readers see the old file or the new one,
        never a partial one (temp file in the same directory, then rename). With ``sudo`` the
        data goes to a private temp file first and is installed by root (ownership root)."""
        want = (mode & 0o7777, hashlib.sha256(data).hexdigest())
        if self.file_state(path, sudo=sudo) == want:
            return False
        self.write_file(path, data, mode, sudo=sudo)
        return True

    def write_file(self, path: str, data: bytes, mode: int = 0o644, *, sudo: bool = False) -> None:
        """``put_file`` without the comparison: always writes (atomically, as ``put_file``).
        For callers that already know the remote state (the playbook engine reads it in a
        batch), saving a round trip."""
        try:
            if sudo:
                self._put_sudo(path, data, mode & 0o7777)
            else:
                self._put_sftp(path, data, mode & 0o7777)
        except OSError as exc:
            raise SshError(f"ssh {self.target}: cannot write {path}: {_one_line(exc)}") from None
        log.debug("ssh %s: wrote %s (%d bytes)", self.target, path, len(data))

    def _upload(self, tmp: str, data: bytes) -> None:
        sftp = self._sftp()
        with sftp.open(tmp, "wb") as fh:
            fh.chmod(0o600)  # before any byte lands: the content may be secret
            fh.set_pipelined(True)
            fh.write(data)

    def _put_sftp(self, path: str, data: bytes, mode: int) -> None:
        directory, name = posixpath.split(path)
        tmp = posixpath.join(directory or ".", f".{name}.penguinctl-{secrets.token_hex(6)}")
        sftp = self._sftp()
        try:
            self._upload(tmp, data)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                sftp.remove(tmp)
            raise

    def _put_sudo(self, path: str, data: bytes, mode: int) -> None:
        tmp = f"/tmp/.penguinctl-upload-{secrets.token_hex(8)}"
        try:
            self._upload(tmp, data)
            script = ["sh", "-c", _INSTALL_SCRIPT, "sh", tmp, path, format(mode, "o")]
            self.run(script, sudo=True, check=True)
        finally:
            if self._sftp_client is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    self._sftp_client.remove(tmp)
