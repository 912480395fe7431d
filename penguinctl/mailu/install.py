"""Converging MailU on a connected server: facts, variables, the playbook, then DKIM signing.

``converge(conn, server, data, secrets, check=...)`` runs ``playbooks/mailu.yaml`` with
the variables of a ``mailstack`` resource's ``data`` (see ``penguinctl.mailu.stack``) and the
stack's secrets (``servers/<server>/mailu``: secret key, API token, admin password; generated on
first use), then makes the host sign each domain with its selector (``MailuSigning``). With
``check`` nothing on the host changes: the result says what would, with file diffs (secrets
masked, ``mailu.env`` hidden).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from penguinctl.errors import ProviderError
from penguinctl.remote.ssh import SshConnection

SUBNET = "192.168.203.0/24"  # MailU's default; must not collide with the host's networks
PORTS = (25, 80, 443, 465, 587, 993)

# One round trip: the distribution, and whether `docker compose` (v2) already works.
_FACTS_SCRIPT = (
    '. /etc/os-release 2>/dev/null; echo "${ID:-unknown} ${VERSION_ID:-0}"; '
    "docker compose version --short 2>/dev/null || echo none"
)


@dataclass
class HostFacts:
    os_id: str
    os_version: str
    compose: str | None  # the version of `docker compose`, None when it does not run

    def compose_package(self) -> str:
        """The distribution package that provides ``docker compose`` ("" when it already works)."""
        if self.compose:
            return ""
        if self.os_id == "ubuntu":
            return "docker-compose-v2"
        if self.os_id == "debian" and _major(self.os_version) >= 13:
            return "docker-compose"
        raise ProviderError(
            f"{self.os_id} {self.os_version} packages no Docker Compose v2 (`docker compose`)",
            hint="use Ubuntu 22.04+ or Debian 13+, or install the compose plugin first",
        )


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdecimal() else 0


def host_facts(conn: SshConnection) -> HostFacts:
    res = conn.run(["sh", "-c", _FACTS_SCRIPT], check=True)
    lines = [*res.stdout.splitlines(), "", ""]
    os_id, _, version = lines[0].partition(" ")
    compose = lines[1].strip()
    return HostFacts(
        os_id or "unknown", version or "0", None if compose in ("", "none") else compose
    )


def resolver_ip(subnet: str) -> str:
    """The resolver's fixed address, as MailU's setup picks it: the subnet's last host but one."""
    net = ipaddress.ip_network(subnet)
    return str(net.broadcast_address - 2)


def variables(
    server: str, data: dict[str, Any], creds: dict[str, Any], facts: HostFacts
) -> dict[str, Any]:
    """Everything the playbook and its templates use. ``creds`` values are ``SecretValue``s."""
    hostnames = list(data["hostnames"])
    return {
        "server": server,
        "root": data["root"],
        "version": data["version"],
        "tls_flavor": data["tls"],
        "hostnames": hostnames,
        "domain": data["domain"],
        "postmaster": "postmaster",
        "admin_local": "admin",
        "message_ratelimit": int(data["message_ratelimit"]),
        "subnet": SUBNET,
        "resolver_ip": resolver_ip(SUBNET),
        "bind4": "0.0.0.0",
        "ports": list(PORTS),
        # during a credential rotation the stack is converged to the next values
        "secret_key": (creds.get("next_secret_key") or creds["secret_key"]).reveal(),
        "api_token": (creds.get("next_api_token") or creds["api_token"]).reveal(),
        "admin_password": (creds.get("next_admin_password") or creds["admin_password"]).reveal(),
        "compose_package": facts.compose_package(),
        # asked from the server itself: any answer but a connection error means the API is up
        "api_probe_url": data["api_url"].rstrip("/") + "/domain",
    }


@dataclass
class ConvergeResult:
    host: str
    steps: list[Any] = field(default_factory=list)  # playbook StepResults
    signing: list[str] = field(default_factory=list)
    check: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.signing) or any(s.status == "changed" for s in self.steps)

    def changes(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "changed"] + self.signing


def converge(
    conn: SshConnection,
    server: str,
    data: dict[str, Any],
    secrets,
    *,
    tenant: str = "",
    owner=None,
    check: bool = False,
    sudo: bool = False,
    on_step=None,
) -> ConvergeResult:
    """Install or converge MailU (see the module docstring). Raises ``ProviderError`` naming
    the step that failed."""
    from penguinctl.mailu.credentials import mailu_credentials
    from penguinctl.mailu.signing import MailuSigning
    from penguinctl.playbook.loader import load_playbook
    from penguinctl.playbook.runner import run_playbook

    creds = mailu_credentials(secrets, server, tenant=tenant, create=not check)
    if check:  # before the first apply there are none yet: placeholders stand in
        creds = {**_placeholders(), **creds}
    facts = host_facts(conn)
    result = run_playbook(
        conn,
        load_playbook("mailu"),
        variables(server, data, creds, facts),
        check=check,
        sudo=sudo,
        on_step=on_step,
    )
    out = ConvergeResult(conn.target, list(result.steps), check=check)
    failed = result.failed
    if failed is not None:
        raise ProviderError(f"server {server}: MailU step '{failed.name}' failed: {failed.detail}")
    signing = MailuSigning(
        conn,
        secrets=secrets,
        root=data["root"],
        sudo=sudo,
        owner=owner or (lambda domain: tenant),
    )
    wanted = dict(data.get("signing") or {})
    if check:
        if signing.signing() != wanted:
            out.signing.append("dkim signing maps")
    else:
        out.signing = signing.sync(wanted)
    return out


def _placeholders() -> dict[str, Any]:
    from penguinctl.providers.secrets.base import SecretValue

    return {
        k: SecretValue("(generated at apply)")
        for k in ("secret_key", "api_token", "admin_password")
    }
