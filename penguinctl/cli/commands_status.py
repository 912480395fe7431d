"""`status`: which home, config file, state store, secrets backend and DNS defaults are in effect,
and why (flag, env, project dir, config file, default). Reads only; creates nothing."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(ctx: typer.Context) -> None:
    """Show the settings in effect and where each comes from.

    Home (config and data directory), config file, state store, secrets backend, keystore key and
    DNS defaults, each with its source: a flag, an environment variable, the project directory
    (.penguinctl/ in this directory or a parent), the config file, or the default. Creates nothing.
    """
    from penguinctl.state.db import inspect_store, masked

    app = ctx.obj
    s = app.settings
    src = s.sources

    def item(value: Any, key: str, **extra: Any) -> dict[str, Any]:
        source, detail = src.get(key, ("default", ""))
        return {"value": value, "source": source, "detail": detail, **extra}

    home = str(s.config_dir) if s.config_dir == s.data_dir else f"{s.config_dir} + {s.data_dir}"
    secrets_value = s.secrets_backend
    if s.secrets_backend == "vault":
        secrets_value += f" ({app.env.get('VAULT_ADDR') or 'VAULT_ADDR not set'})"
    else:
        secrets_value += f" ({s.keystore_dir})"
    key_value = "PENGUINCTL_MASTER_KEY" if s.master_key else str(s.master_key_file)
    data = {
        "home": item(home, "home"),
        "config_file": {
            "value": str(s.config_file) if s.config_file else None,
            "source": "config file" if s.config_file else "default",
            "detail": "" if s.config_file else f"none at {s.config_dir / 'config.yaml'}",
        },
        "state": item(masked(s.state_url), "state", **inspect_store(s.state_url)),
        "secrets": item(secrets_value, "secrets"),
        "keystore_key": item(
            key_value,
            "master_key",
            exists=bool(s.master_key) or s.master_key_file.is_file(),
        ),
        "dns_zones_dir": item(str(s.zones_dir), "zones_dir"),
        "dns_resolvers": item(list(s.dns_resolvers) or None, "resolvers"),
    }

    def text(console) -> None:
        from rich.markup import escape

        labels = {
            "home": "home",
            "config_file": "config file",
            "state": "state store",
            "secrets": "secrets",
            "keystore_key": "keystore key",
            "dns_zones_dir": "DNS zones dir",
            "dns_resolvers": "DNS resolvers",
        }
        for key, label in labels.items():
            entry = data[key]
            value = entry["value"]
            if value is None:
                value = "(system)" if key == "dns_resolvers" else "(none)"
            elif isinstance(value, list):
                value = ", ".join(value)
            why = entry["source"] + (f": {entry['detail']}" if entry["detail"] else "")
            console.print(f"{label:<14} {escape(str(value))}")
            console.print(f"{'':<14} [dim]from {escape(why)}[/]")
            if key == "state":
                console.print(f"{'':<14} {escape(entry['status'])}")

    app.emit(data, text)
