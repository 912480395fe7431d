"""Recording resources straight into a state store, for tests of commands that read recorded
servers and domains (backup, check) without running an apply (which would install MailU)."""

from __future__ import annotations

from typing import Any


def record_resources(state_url: str, rows: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """``rows``: (kind, tenant, name, data), recorded as applied (the store is migrated first)."""
    from penguinctl.resources import ResourceKey
    from penguinctl.state import repo
    from penguinctl.state.db import make_engine, migrate, session_scope

    engine = make_engine(state_url)
    try:
        migrate(engine)
        with session_scope(engine) as session:
            for kind, tenant, name, data in rows:
                provider = f"server:{data.get('provider')}" if kind == "server" else "state"
                repo.upsert_resource(
                    session, key=ResourceKey(kind, tenant, name), provider=provider, data=data
                )
    finally:
        engine.dispose()


def static_server(address: str, port: int, hostname: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "static",
        "hostname": hostname,
        "ips": [address],
        "static": {"address": address, "ssh_user": "root", "ssh_port": port},
        "mail": {"stack": "mailu"},
        **extra,
    }
