"""Where penguinctl keeps its files and state. Built by ``load_settings()``, never at import.

- ``PENGUINCTL_HOME``: one directory for config and data (overrides the XDG defaults).
- XDG defaults: config in ``$XDG_CONFIG_HOME/penguinctl``, data in ``$XDG_DATA_HOME/penguinctl``.
- ``PENGUINCTL_STATE``: SQLAlchemy URL of the state store; default a SQLite file in the data dir.
- ``PENGUINCTL_MASTER_KEY``: keystore key (urlsafe base64, 32 bytes); default a 0600 key file.
- ``PENGUINCTL_SECRETS``: the secrets backend, ``keystore`` (default) or ``vault`` (configured by
  the ``VAULT_*`` variables, see ``penguinctl.providers.secrets.vault``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SECRETS_BACKENDS = ("keystore", "vault")


@dataclass(frozen=True)
class Settings:
    config_dir: Path
    data_dir: Path
    state_url: str
    master_key: str | None  # from the environment; None means use the key file
    secrets_backend: str = "keystore"  # keystore | vault

    @property
    def keystore_dir(self) -> Path:
        return self.data_dir / "keystore"

    @property
    def master_key_file(self) -> Path:
        return self.config_dir / "master.key"

    @property
    def zones_dir(self) -> Path:
        """Default directory of the zonefile DNS provider when a spec names none."""
        return self.data_dir / "zones"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def is_default_sqlite(self) -> bool:
        return self.state_url.startswith("sqlite:")


def load_settings(
    env: Mapping[str, str] | None = None, *, state_url: str | None = None
) -> Settings:
    env = os.environ if env is None else env
    home = env.get("PENGUINCTL_HOME")
    if home:
        config_dir = data_dir = Path(home).expanduser().resolve()
    else:
        user_home = Path(env.get("HOME", "~")).expanduser()
        config_dir = Path(env.get("XDG_CONFIG_HOME") or user_home / ".config") / "penguinctl"
        data_dir = Path(env.get("XDG_DATA_HOME") or user_home / ".local" / "share") / "penguinctl"
    url = state_url or env.get("PENGUINCTL_STATE") or f"sqlite:///{data_dir / 'state.db'}"
    backend = (env.get("PENGUINCTL_SECRETS") or "keystore").strip().lower()
    if backend not in SECRETS_BACKENDS:
        from penguinctl.errors import ConfigError

        raise ConfigError(
            f"PENGUINCTL_SECRETS={backend!r} is not a secrets backend",
            hint="use keystore (the default) or vault",
        )
    return Settings(
        config_dir=config_dir,
        data_dir=data_dir,
        state_url=url,
        master_key=env.get("PENGUINCTL_MASTER_KEY") or None,
        secrets_backend=backend,
    )
