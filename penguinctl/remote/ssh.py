"""The SSH transport: one authenticated session to ``user@host:port``, on ``fabric.Connection``
(paramiko underneath), possibly through jump hosts.

Contract:
- ``host`` may be an alias of the operator's OpenSSH client config (``penguinctl.remote.sshconfig``;
  fabric applies it): ``HostName``, and ``User``/``Port`` where the caller passes None (then
  root and 22). A ``ProxyJump`` there is followed when the caller gives no ``via``; each hop is
  a connection of its own, with its host key pinned like any other. ``ProxyCommand`` is refused.
- Authentication uses only the private key given (PEM or OpenSSH text, e.g. from the secrets
  backend, or a callable returning it, called at the first ``connect``): no agent, no
  ``~/.ssh`` keys, and the config's ``IdentityFile`` is ignored. The key text is parsed once and
  then dropped; it never appears in a message, a log line or a ``repr``. Two exceptions: the
  bootstrap's first contact with a provider's server (``penguinctl.remote.bootstrap``):
  ``private_key=None`` with ``password=`` (a ``SecretValue`` or str) authenticates with that
  password only, registered for masking and never shown; and a jump host penguinctl holds no
  key for (``SshConnection.jump``), which authenticates as ``ssh`` would: the config's
  ``IdentityFile`` (and the agent unless ``IdentitiesOnly yes``), else the agent and the
  default ``~/.ssh`` keys.
- The server's host key is checked against ``host_keys`` before authentication: pinned on first
  contact, a changed key raises ``HostKeyChanged`` and nothing is executed. A host reached
  through a jump host is pinned under ``JUMP_HOST:JUMP_PORT/HOST`` (``pin_host``): the same
  private address behind two bastions is two machines.
- Connection set-up is retried ``SshOptions.retries`` times with exponential backoff on transient
  failures (refused, timed out, reset, no banner, the jump host could not reach the target); an
  authentication failure or a changed host key is never retried. After the retries
  ``SshUnreachable`` is raised. A jump host's failure is reported as such, with its own retries.
- ``run`` returns a ``Result`` whatever the exit code; ``check=True`` raises
  ``RemoteCommandFailed`` on a non-zero one. A command running past its timeout raises
  ``CommandTimeout`` after closing its channel (the remote process may then live until it next
  writes to the closed pipe).
- Commands are logged (DEBUG, logger ``penguinctl.remote``) by program name only; pass secrets on
  ``stdin``, never in arguments (those are visible in ``ps`` on the server).

Commands run on channels of fabric's transport with penguinctl's own reader (bytes on stdin, a
deadline per command, no output echoed), not through ``Connection.run``: invoke's runner starts
three threads per command and polls, which costs more than the command on a fan-out.

One connection is used by one thread at a time; fan-out opens one per host. A jump host's
connection may be shared by the targets behind it (``penguinctl.remote.servers.JumpPool``):
``connect`` is locked and paramiko opens channels on one transport from several threads.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import paramiko

from penguinctl.errors import ConfigError
from penguinctl.remote.errors import (
    HostKeyChanged,
    SshAuthFailed,
    SshError,
    SshKeyInvalid,
    SshUnreachable,
)
from penguinctl.remote.execute import CommandRunner
from penguinctl.remote.files import FileOps, one_line
from penguinctl.remote.hostkeys import HostKeyStore, PinningPolicy, changed_error

if TYPE_CHECKING:
    import fabric

log = logging.getLogger("penguinctl.remote")

_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)
MAX_JUMPS = 8  # hops in front of one host: more is a ProxyJump loop


@dataclass(frozen=True)
class SshOptions:
    """Timeouts in seconds. ``connect_timeout`` bounds the TCP connect (and opening the channel
    through a jump host), ``banner_timeout`` the wait for the server's banner, ``auth_timeout``
    the authentication, ``command_timeout`` each command (overridable per ``run``). ``retries``
    extra connect attempts, sleeping ``backoff * 2**n`` before each."""

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
    import io

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


def _fabric_connection(
    host: str, port: int | None, user: str | None, ssh_config: paramiko.SSHConfig | None, *,
    default_user: str,
) -> fabric.Connection:  # fmt: skip
    """An unopened ``fabric.Connection`` with ``ssh_config`` applied and no gateway (jump hosts
    are penguinctl's, below). Each gets its own ``fabric.Config``: a Connection writes into its
    config, which must not be shared between threads."""
    import fabric

    if ssh_config is None:  # none: an explicit empty one, so fabric reads no file
        ssh_config = paramiko.SSHConfig()
    config = fabric.Config(
        lazy=True, ssh_config=ssh_config, overrides={"user": default_user, "port": 22}
    )
    try:
        return fabric.Connection(host, user=user, port=port, config=config, gateway=False)
    except (KeyError, ValueError, TypeError) as exc:  # e.g. `Port x` or `ForwardAgent /path`
        raise ConfigError(
            f"ssh {host}: the ssh client config cannot be applied ({type(exc).__name__}: "
            f"{one_line(exc)})",
            hint="fix the Host block for it, or set PENGUINCTL_SSH_CONFIG=none",
        ) from None


class SshConnection(CommandRunner, FileOps):
    """A lazily opened SSH session; use as a context manager or call ``close()``."""

    def __init__(
        self,
        host: str,
        port: int | None,
        user: str | None,
        private_key: Any,
        *,
        host_keys: HostKeyStore,
        options: SshOptions | None = None,
        passphrase: str | None = None,
        password: Any = None,
        via: SshConnection | None = None,
        owns_via: bool = True,
        ssh_config: paramiko.SSHConfig | None = None,
        trust_hint: str | None = None,
        _operator: bool = False,
        _depth: int = 0,
    ) -> None:
        self.host_keys = host_keys
        self.options = options or SshOptions()
        self.ssh_config = ssh_config
        self.trust_hint = trust_hint
        self.alias = host
        fab = _fabric_connection(
            host, port, user, ssh_config, default_user=_local_user() if _operator else "root"
        )
        self._fab = fab
        self.host, self.port, self.user = str(fab.host), int(fab.port), str(fab.user)
        self._lookup: dict[str, Any] = dict(fab.ssh_config or {})
        self._lock = threading.Lock()
        self._operator = _operator
        self._pkey: paramiko.PKey | None = None
        self._key_source: Any = None
        self._passphrase = passphrase
        self._password: str | None = None
        if _operator:
            pass
        elif private_key is None and password is not None:  # bootstrap's first contact only
            self._password = _password_text(password)
        elif callable(private_key):
            self._key_source = private_key  # asked at the first connect
        else:
            self._pkey = load_private_key(private_key, passphrase)
        self.owns_via = owns_via
        self.server: str | None = None  # the penguinctl Server this is, when it is one
        self.tenant: str = ""  # and its owner ("": the platform), where its key lives
        self.via = via if via is not None else self._config_jumps(_depth)

    @classmethod
    def jump(
        cls,
        host_string: str,
        *,
        host_keys: HostKeyStore,
        options: SshOptions | None = None,
        ssh_config: paramiko.SSHConfig | None = None,
        via: SshConnection | None = None,
        trust_hint: str | None = None,
        _depth: int = 0,
    ) -> SshConnection:
        """A jump host given as ``[ssh://][user@]host[:port]`` (an ssh_config alias too), logged
        in to with the operator's own identity (see the module docstring)."""
        from penguinctl.remote.sshconfig import parse_host_string

        try:
            hs = parse_host_string(host_string)
        except ValueError as exc:
            raise ConfigError(f"jump host {exc}") from None
        return cls(
            hs.host, hs.port, hs.user, None, host_keys=host_keys, options=options,
            ssh_config=ssh_config, via=via, trust_hint=trust_hint, _operator=True,
            _depth=_depth,
        )  # fmt: skip

    def _config_jumps(self, depth: int) -> SshConnection | None:
        """The jump hosts the config's ``ProxyJump`` names for this host (None: direct)."""
        if "proxycommand" in self._lookup and "proxyjump" not in self._lookup:
            raise ConfigError(
                f"ssh {self.alias}: the ssh client config sets a ProxyCommand, which penguinctl "
                "does not run",
                hint="use ProxyJump in the ssh config, or ssh.via in the Server spec",
            )
        spec = str(self._lookup.get("proxyjump") or "").strip()
        if not spec or spec.lower() == "none":
            return None
        via: SshConnection | None = None
        for hop in spec.split(","):
            hop = hop.strip()
            if hop in (self.alias, self.host):  # `Host *` naming the jump host itself
                return via
            if depth + 1 > MAX_JUMPS:
                raise ConfigError(
                    f"ssh {self.alias}: more than {MAX_JUMPS} jump hosts (a ProxyJump loop?)",
                    hint="check the ProxyJump lines of the ssh client config",
                )
            via = SshConnection.jump(
                hop, host_keys=self.host_keys, options=self.options, ssh_config=self.ssh_config,
                via=via, _depth=depth + 1,
            )  # fmt: skip
            depth += 1
        return via

    @property
    def pin_host(self) -> str:
        """The name this host's key is pinned under: its address, prefixed with the jump host
        in front of it (``JUMP_HOST:JUMP_PORT/HOST``) when it is reached through one."""
        if self.via is None:
            return self.host
        return f"{self.via.pin_host}:{self.via.port}/{self.host}"

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def route(self) -> str:
        """``target``, then ``via`` each jump host in front of it."""
        hops = [self.target]
        via = self.via
        while via is not None:
            hops.append(via.target)
            via = via.via
        return " via ".join(hops)

    def hops(self) -> list[SshConnection]:
        """The jump hosts in front of this host, nearest first."""
        out, via = [], self.via
        while via is not None:
            out.append(via)
            via = via.via
        return out

    def __repr__(self) -> str:
        return f"SshConnection({self.route})"

    # -- session -----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        transport = self._fab.client.get_transport()
        return transport is not None and transport.is_active()

    def connect(self) -> None:
        """Open the session if it is not open (and alive), through its jump hosts. Raises
        ``SshUnreachable``, ``SshAuthFailed`` or ``HostKeyChanged``."""
        with self._lock:
            if self.is_open:
                return
            self._close_session()
            self._connect()

    def _connect(self) -> None:
        if self._key_source is not None:
            self._pkey = load_private_key(self._key_source(), self._passphrase)
            self._key_source = None
        last: BaseException | None = None
        for attempt in range(self.options.retries + 1):
            if attempt:
                time.sleep(self.options.backoff * 2 ** (attempt - 1))
            self._connect_via()
            try:
                self._open()
                return
            except socket.gaierror as exc:
                raise SshUnreachable(f"ssh {self.route}: {one_line(exc)}") from None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last = exc
                log.debug("ssh %s: attempt %d failed: %s", self.route, attempt + 1, exc)
        raise SshUnreachable(
            f"ssh {self.route}: unreachable after {self.options.retries + 1} attempts: "
            f"{one_line(last) if last else 'unknown error'}",
            hint="check that the server is up and its SSH port is reachable"
            + (" from the jump host" if self.via is not None else ""),
        )

    def _connect_via(self) -> None:
        if self.via is None:
            return
        try:
            self.via.connect()
        except SshError as exc:
            raise exc.in_context(f"jump host for {self.target}: ") from None
        self._fab.gateway = self.via._fab

    def _open(self) -> None:
        opts = self.options
        client = self._fab.client
        client.get_host_keys().clear()
        pinned = self.host_keys.get(self.pin_host, self.port)
        if pinned is not None:  # makes paramiko negotiate the pinned key type
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            key = paramiko.PKey.from_type_string(pinned[0], base64.b64decode(pinned[1]))
            client.get_host_keys().add(name, pinned[0], key)
        client.set_missing_host_key_policy(PinningPolicy(self.host_keys, self.pin_host, self.port))
        self._fab.connect_timeout = None  # ours, in connect_kwargs (fabric's is whole seconds)
        self._fab.connect_kwargs = self._auth_kwargs() | {
            "timeout": opts.connect_timeout,
            "banner_timeout": opts.banner_timeout,
            "auth_timeout": opts.auth_timeout,
            "channel_timeout": opts.connect_timeout,
        }
        try:
            self._fab.open()
        except paramiko.BadHostKeyException as exc:
            client.close()
            assert pinned is not None
            offered = (exc.key.get_name(), exc.key.get_base64())
            raise self._hinted(changed_error(self.pin_host, self.port, pinned, offered)) from None
        except HostKeyChanged as exc:
            client.close()
            raise self._hinted(exc) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise SshAuthFailed(
                f"ssh {self.route}: authentication failed: {one_line(exc)}",
                hint=self._auth_hint(),
            ) from None
        except BaseException:  # state store errors, transient failures (retried by the caller)
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None and opts.keepalive:
            transport.set_keepalive(opts.keepalive)
        log.debug("ssh %s: connected", self.route)

    @property
    def operator_identity(self) -> bool:
        """True for a jump host logged in to with the operator's own identity."""
        return self._operator

    def identity_files(self) -> list[str]:
        """The config's ``IdentityFile`` entries for this host that exist (operator hops)."""
        import os

        files = [os.path.expanduser(str(f)) for f in self._lookup.get("identityfile") or []]
        return [f for f in files if os.path.isfile(f)]

    @property
    def identities_only(self) -> bool:
        return str(self._lookup.get("identitiesonly", "no")).lower() == "yes"

    def _auth_kwargs(self) -> dict[str, Any]:
        if not self._operator:
            secret = {"pkey": self._pkey} if self._pkey is not None else {}
            if self._password is not None:
                secret = {"password": self._password}
            return {**secret, "allow_agent": False, "look_for_keys": False}
        named = bool(self._lookup.get("identityfile"))
        out: dict[str, Any] = {"allow_agent": not self.identities_only, "look_for_keys": not named}
        if self.identity_files():
            out["key_filename"] = self.identity_files()
        return out

    def _auth_hint(self) -> str:
        if self._operator:
            return "check the IdentityFile (or agent key) your ssh config gives this jump host"
        if self._pkey is None:
            return "check the provider's initial password for the server"
        return "check that the server's authorized_keys holds the public half of the key"

    def _hinted(self, exc: HostKeyChanged) -> HostKeyChanged:
        if self.trust_hint:
            exc.hint = self.trust_hint
        return exc

    def _close_session(self) -> None:
        fab = self._fab
        sftp, fab._sftp = fab._sftp, None
        if sftp is not None:
            sftp.close()
        fab.client.close()
        fab.transport = None

    def close(self) -> None:
        """Close the session, and the jump hosts' sessions this connection owns."""
        with self._lock:
            self._close_session()
        if self.via is not None and self.owns_via:
            self.via.close()

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
        transport = self._fab.client.get_transport()
        if transport is None:
            raise SshError(f"ssh {self.target}: connection lost")
        return transport

    def _sftp(self) -> paramiko.SFTPClient:
        self.connect()
        return self._fab.sftp()

    def _open_sftp(self) -> paramiko.SFTPClient | None:
        return self._fab._sftp


def _local_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"
