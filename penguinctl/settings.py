"""Where penguinctl keeps its files and state, and why. Built by ``load_settings()``, not at import.

The home (config + data directory) is the first of:

1. ``PENGUINCTL_HOME``;
2. a project directory: ``.penguinctl/`` in the current directory or the nearest parent that has
   one (as git finds ``.git``; ``penguinctl init --project`` creates it);
3. the XDG defaults: config in ``$XDG_CONFIG_HOME/penguinctl``, data in
   ``$XDG_DATA_HOME/penguinctl``.

Each other setting is the first of: the command-line flag, the environment variable, the config file
``config.yaml`` in the config directory (see ``penguinctl.config_file``), the default:

- state store: ``--state`` / ``PENGUINCTL_STATE`` / ``state:``; default a SQLite file in the data
  dir. ``postgres://`` and ``postgresql://`` mean PostgreSQL through psycopg 3.
- secrets backend: ``PENGUINCTL_SECRETS`` / ``secrets:``; ``keystore`` (default) or ``vault``
  (configured by the ``VAULT_*`` variables, see ``penguinctl.providers.secrets.vault``).
- zone-file directory of a ``zonefile`` DNS provider whose spec names none: ``dns.zones_dir``;
  default ``zones`` in the data dir. Recursive resolvers for live DNS checks: ``dns.resolvers``;
  default the system's (``/etc/resolv.conf``).
- ``PENGUINCTL_MASTER_KEY``: keystore key (urlsafe base64, 32 bytes); default a 0600 key file.

``Settings.sources`` says, for each of these, where its value came from (``penguinctl status``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SECRETS_BACKENDS = ("keystore", "vault")
PROJECT_DIR_NAME = ".penguinctl"
CONFIG_FILE_NAME = "config.yaml"

# Where a value came from, as `penguinctl status` prints it.
FLAG, ENV, PROJECT, CONFIG, DEFAULT = "flag", "env", "project dir", "config file", "default"

_PG_SCHEME = re.compile(r"^(postgres|postgresql)(\+psycopg2)?://", re.IGNORECASE)


def normalize_state_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (libpq's spellings, and SQLAlchemy's default psycopg2
    driver, which penguinctl does not ship) mean PostgreSQL through psycopg 3."""
    return _PG_SCHEME.sub("postgresql+psycopg://", url.strip(), count=1)


@dataclass(frozen=True)
class Settings:
    config_dir: Path
    data_dir: Path
    state_url: str
    master_key: str | None  # from the environment; None means use the key file
    secrets_backend: str = "keystore"  # keystore | vault
    zones_dir_setting: Path | None = None  # dns.zones_dir of the config file
    dns_resolvers: tuple[str, ...] = ()  # dns.resolvers of the config file (HOST[:PORT])
    config_file: Path | None = None  # the config file read, if there was one
    # setting -> (source, detail): e.g. "state" -> ("flag", "--state")
    sources: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def keystore_dir(self) -> Path:
        return self.data_dir / "keystore"

    @property
    def master_key_file(self) -> Path:
        return self.config_dir / "master.key"

    @property
    def zones_dir(self) -> Path:
        """Default directory of the zonefile DNS provider when a spec names none."""
        return self.zones_dir_setting or self.data_dir / "zones"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def is_default_sqlite(self) -> bool:
        return self.state_url.startswith("sqlite:")


def find_project_dir(start: Path) -> Path | None:
    """The nearest ``.penguinctl`` directory in ``start`` or one of its parents."""
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_DIR_NAME
        if candidate.is_dir():
            return candidate
    return None


def home_dirs(
    env: Mapping[str, str], cwd: Path | None = None
) -> tuple[Path, Path, tuple[str, str]]:
    """The config dir, the data dir, and where they came from (the first of ``PENGUINCTL_HOME``,
    a project directory found from ``cwd``, the XDG defaults)."""
    home = env.get("PENGUINCTL_HOME")
    if home:
        path = Path(home).expanduser().resolve()
        return path, path, (ENV, "PENGUINCTL_HOME")
    try:
        start = (cwd or Path.cwd()).resolve()
        project = find_project_dir(start)
    except OSError:  # the current directory was removed
        project = None
    if project is not None:
        return project, project, (PROJECT, f"found from {start}")
    user_home = Path(env.get("HOME", "~")).expanduser()
    config_dir = Path(env.get("XDG_CONFIG_HOME") or user_home / ".config") / "penguinctl"
    data_dir = Path(env.get("XDG_DATA_HOME") or user_home / ".local" / "share") / "penguinctl"
    return config_dir, data_dir, (DEFAULT, "XDG_CONFIG_HOME / XDG_DATA_HOME")


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    state_url: str | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Settings for one invocation. ``state_url`` is the ``--state`` flag; ``cwd`` is where the
    project directory search starts (default: the current directory)."""
    env = os.environ if env is None else env
    sources: dict[str, tuple[str, str]] = {}
    config_dir, data_dir, sources["home"] = home_dirs(env, cwd)

    config_path = config_dir / CONFIG_FILE_NAME
    from_file = None
    if config_path.is_file():
        from penguinctl.config_file import read_config_file

        from_file = read_config_file(config_path)
    where = str(config_path)

    if state_url:
        url, sources["state"] = state_url, (FLAG, "--state")
    elif env.get("PENGUINCTL_STATE"):
        url, sources["state"] = env["PENGUINCTL_STATE"], (ENV, "PENGUINCTL_STATE")
    elif from_file is not None and from_file.state:
        url, sources["state"] = from_file.state, (CONFIG, f"{where}: state")
    else:
        url = f"sqlite:///{data_dir / 'state.db'}"
        sources["state"] = (DEFAULT, "state.db in the data dir")

    if env.get("PENGUINCTL_SECRETS"):
        backend, sources["secrets"] = env["PENGUINCTL_SECRETS"], (ENV, "PENGUINCTL_SECRETS")
    elif from_file is not None and from_file.secrets:
        backend, sources["secrets"] = from_file.secrets, (CONFIG, f"{where}: secrets")
    else:
        backend, sources["secrets"] = "keystore", (DEFAULT, "")
    backend = backend.strip().lower()
    if backend not in SECRETS_BACKENDS:
        from penguinctl.errors import ConfigError

        origin = "PENGUINCTL_SECRETS" if sources["secrets"][0] == ENV else f"{where}: secrets"
        raise ConfigError(
            f"{origin}={backend!r} is not a secrets backend",
            hint="use keystore (the default) or vault",
        )

    zones_dir = None
    resolvers: tuple[str, ...] = ()
    if from_file is not None and from_file.dns.zones_dir:
        zones_dir = (config_path.parent / from_file.dns.zones_dir).expanduser().resolve()
        sources["zones_dir"] = (CONFIG, f"{where}: dns.zones_dir")
    else:
        sources["zones_dir"] = (DEFAULT, "zones in the data dir")
    if from_file is not None and from_file.dns.resolvers:
        resolvers = tuple(from_file.dns.resolvers)
        sources["resolvers"] = (CONFIG, f"{where}: dns.resolvers")
    else:
        sources["resolvers"] = (DEFAULT, "the system resolver (/etc/resolv.conf)")

    if env.get("PENGUINCTL_MASTER_KEY"):
        sources["master_key"] = (ENV, "PENGUINCTL_MASTER_KEY")
    else:
        sources["master_key"] = (DEFAULT, "master.key in the config dir")
    return Settings(
        config_dir=config_dir,
        data_dir=data_dir,
        state_url=normalize_state_url(url),
        master_key=env.get("PENGUINCTL_MASTER_KEY") or None,
        secrets_backend=backend,
        zones_dir_setting=zones_dir,
        dns_resolvers=resolvers,
        config_file=config_path if from_file is not None else None,
        sources=sources,
    )
