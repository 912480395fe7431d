"""SFTP repositories reached with a key of penguinctl's, not the server's own SSH setup.

When the secret ``backups/<server>`` holds ``sftp_private_key`` (OpenSSH private key) and,
to pin the backup host, ``sftp_known_hosts`` (its ``known_hosts`` line(s)), every restic call
on the server runs with an ssh-agent holding that key (the key travels on stdin, base64, and is
never written to a file there) and with ``-o sftp.command=ssh ... -s sftp``: host key checking
strict against the pinned line, batch mode, the port of the URL. Without ``sftp_private_key``
restic uses the server's own ssh configuration, as before.

Repository forms: ``sftp:user@host:/path`` and ``sftp://user@host[:port]//path``.
"""

from __future__ import annotations

import base64
import re
import secrets as pysecrets
from dataclasses import dataclass

from penguinctl.errors import UsageError

ENV_KEY = "PENGUINCTL_SFTP_KEY"
ENV_KNOWN = "PENGUINCTL_SFTP_KNOWN"
ENV_DIR = "PENGUINCTL_SFTP_DIR"
ENV_SSH = "PENGUINCTL_SFTP_SSH"
ENV_RESTIC = "PENGUINCTL_RESTIC"
_URL = re.compile(r"sftp://(?:(?P<user>[^@/]+)@)?(?P<host>[^/:]+|\[[^\]]+\])(?::(?P<port>\d+))?/")
_SHORT = re.compile(r"sftp:(?:(?P<user>[^@/:]+)@)?(?P<host>[^:/]+):")
_SAFE = re.compile(r"[A-Za-z0-9._@\[\]:-]+")


@dataclass(frozen=True)
class SftpTarget:
    user: str | None
    host: str
    port: int | None


def parse(repo: str) -> SftpTarget | None:
    """The SFTP host of a restic repository URL, or None for another kind."""
    if not repo.startswith("sftp:"):
        return None
    m = _URL.match(repo) or _SHORT.match(repo)
    if m is None:
        raise UsageError(f"cannot read the SFTP host of repository {repo!r}")
    port = m.groupdict().get("port")
    target = SftpTarget(m.group("user"), m.group("host"), int(port) if port else None)
    for part in (target.user or "", target.host):
        if part and not _SAFE.fullmatch(part):
            raise UsageError(f"unsupported characters in the SFTP host of {repo!r}")
    return target


def environment(fields: dict, repo: str) -> dict[str, str]:
    """The extra NAME=value lines for restic's stdin (see the module docstring)."""
    target = parse(repo)
    if target is None or "sftp_private_key" not in fields:
        return {}
    key = fields["sftp_private_key"].reveal()
    env = {ENV_KEY: base64.b64encode(key.encode()).decode()}
    directory = f"/tmp/penguinctl-sftp-{pysecrets.token_hex(8)}"
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=no"]
    if "sftp_known_hosts" in fields:
        known = fields["sftp_known_hosts"].reveal()
        env[ENV_KNOWN] = base64.b64encode(known.encode()).decode()
        ssh += ["-o", f"UserKnownHostsFile={directory}/known_hosts",
                "-o", "StrictHostKeyChecking=yes"]  # fmt: skip
    if target.port:
        ssh += ["-p", str(target.port)]
    ssh += [f"{target.user}@{target.host}" if target.user else target.host, "-s", "sftp"]
    env[ENV_DIR] = directory
    env[ENV_SSH] = " ".join(ssh)
    return env


def wrap(env: dict[str, str], repo: str, binary: str) -> str | None:
    """When ``env`` sets up SFTP: record the real restic binary and return the wrapper's path
    (what the scripts run instead of restic)."""
    if ENV_DIR not in env:
        return None
    env[ENV_RESTIC] = binary
    return f"{env[ENV_DIR]}/restic"
