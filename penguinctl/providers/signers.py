"""Which DKIM signer a recorded server gets (``providers.signing``): MailU's over SSH
(``penguinctl.mailu.signing``) when penguinctl manages its stack and can reach it, else one that
records the switch for the operator to make by hand."""

from __future__ import annotations

from typing import Any

from penguinctl.providers.signing import DkimSigner, RecordOnlySigner


def signer_for(
    server_name: str,
    server: dict[str, Any] | None,
    *,
    secrets=None,
    db=None,
    env: dict[str, str] | None = None,
    actor: str = "penguinctl",
) -> DkimSigner:
    """The signer of a recorded server: MailU's over SSH when penguinctl manages the stack and
    has what it needs to reach it (``secrets``, the state ``db`` for pinned host keys)."""
    provider = (server or {}).get("provider", "external")
    if provider == "external":
        return RecordOnlySigner(server_name, f"server {server_name} is external")
    stack = ((server or {}).get("mail") or {}).get("stack", "mailu")
    if stack == "none":
        return RecordOnlySigner(server_name, f"server {server_name} has no managed mail stack")
    if stack == "mailu" and secrets is not None and db is not None:
        from penguinctl.mailu.signing import MailuSigner, MailuSigning
        from penguinctl.plan.confine import domain_owners
        from penguinctl.providers.mailstack import MailstackProvider
        from penguinctl.remote.hostkeys import StateHostKeyStore
        from penguinctl.remote.servers import recorded_servers

        reach = MailstackProvider(
            f"mailstack:{server_name}",
            server=server_name,
            server_data=dict(server or {}),
            secrets=secrets,
            host_keys=StateHostKeyStore(db, actor=actor),
            env=dict(env or {}),
            servers=lambda: recorded_servers(db),
            tenant=recorded_servers(db).get(server_name, ("", {}))[0],
        )
        root = ((server or {}).get("mail") or {}).get("root") or "/mailu"
        return MailuSigner(
            server_name,
            lambda: MailuSigning(
                reach.connect(),
                secrets=secrets,
                root=root,
                owner=lambda d: domain_owners(db).get(d, ""),
            ),
        )
    return RecordOnlySigner(
        server_name, f"the {stack} signer of server {server_name} is not available in this version"
    )
