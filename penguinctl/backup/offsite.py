"""Is a server's backup repository somewhere else than the server it protects?

A repository on the protected server (a local path, ``local:``, or an SFTP/REST URL naming
the server's own address or hostname; also the default when a server has no BackupPolicy)
goes down with the server: ``plan`` warns about it and ``check`` fails it.
"""

from __future__ import annotations

import re
from typing import Any

from penguinctl.backup.repository import DEFAULT_REPOSITORY, kind_of, resolve

_HOST = re.compile(r"^(?:sftp|rest):(?://)?(?:https?://)?(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+)")


def repository_host(repo: str) -> str | None:
    match = _HOST.match(repo)
    return match.group(1).strip("[]").lower() if match else None


def on_server(repo: str | None, server: str, data: dict[str, Any]) -> str | None:
    """Why ``repo`` (a policy's template, or None for the default) lives on ``server``, or None
    when it is elsewhere."""
    url = resolve(repo or DEFAULT_REPOSITORY, server)
    if kind_of(url) in ("local",) or url.startswith("local:"):
        return f"repository {url} is a path on server {server} itself"
    host = repository_host(url)
    own = {str(ip).lower() for ip in data.get("ips") or [] if isinstance(ip, str)}
    own |= {str((data.get("static") or {}).get("address") or "").lower()}
    own |= {str(data.get("hostname") or "").rstrip(".").lower(), str(data.get("main_ip") or "")}
    if host and host in own - {""}:
        return f"repository {url} is on server {server} itself ({host})"
    return None


def spec_warnings(specs: Any) -> list[str]:
    """Plan warnings for the servers of ``specs`` whose BackupPolicy keeps backups on them."""
    from penguinctl.backup.policy import policy_for

    out = []
    for name, doc in sorted(specs.servers.items()):
        spec = doc.spec
        if spec.provider == "external" or not spec.backup:
            continue
        policy = policy_for(name, {}, specs=specs, recorded={})
        if policy.name is None:
            continue
        data = {
            "hostname": spec.hostname,
            "static": spec.static.model_dump(mode="json") if spec.static is not None else {},
        }
        why = on_server(policy.repository, name, data)
        if why:
            fix = f"BackupPolicy {policy.name}: set repository to sftp:USER@BACKUP-HOST:/PATH"
            out.append(f"server/{name}: backups are not off-server: {why} ({fix})")
    return out
