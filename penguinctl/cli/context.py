"""AppContext: the one injectable object commands use (settings, output, consoles, state, secrets).

Built per invocation by the root callback; nothing here is created at import time. Heavy modules
(SQLAlchemy, the spec engine, cryptography) are imported only when a command asks for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from penguinctl.settings import Settings


class AppContext:
    """Per-invocation context. ``settings`` may be given, or loaded on first use by
    ``settings_loader`` (so that `penguinctl CMD --help` never reads the config file)."""

    def __init__(
        self,
        settings: Settings | None = None,
        output: str = "text",
        yes: bool = False,
        debug: bool = False,
        env: dict[str, str] | None = None,
        *,
        settings_loader: Callable[[], Settings] | None = None,
    ) -> None:
        if settings is None and settings_loader is None:
            raise TypeError("AppContext needs settings or a settings_loader")
        self._settings = settings
        self._settings_loader = settings_loader
        self.output = output
        self.yes = yes
        self.debug = debug
        self.env: dict[str, str] = dict(os.environ) if env is None else env
        self._db: Any = None
        self._read_db: Any = None
        self._clock: Any = None
        self._secrets: Any = None
        # `secrets list/get/put/migrate*` work on a store of any layout; everything else
        # refuses one that still holds old-layout (ownerless) secrets
        self.any_secrets_layout = False
        self._out: Any = None
        self._err: Any = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            assert self._settings_loader is not None
            self._settings = self._settings_loader()
        return self._settings

    def reload_settings(self) -> None:
        """Load the settings again (after ``init --project`` created a project directory)."""
        if self._settings_loader is not None:
            self._settings = None

    # -- consoles -----------------------------------------------------------------------------
    @property
    def out(self):
        if self._out is None:
            from rich.console import Console

            # -o wide: tables at their natural width (one line per row) instead of the terminal's
            width = 100_000 if self.output == "wide" else None
            self._out = Console(soft_wrap=True, highlight=False, width=width)
        return self._out

    @property
    def err(self):
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, soft_wrap=True, highlight=False)
        return self._err

    @property
    def machine(self) -> bool:
        return self.output in ("json", "yaml")

    def emit(self, data: Any, render_text=None) -> None:
        """Print ``data`` as JSON/YAML, or call ``render_text(console)`` in text mode."""
        from penguinctl.cli.render import csv_text, dump

        if self.output == "csv":
            print(csv_text(data), end="")
        elif self.machine or render_text is None:
            print(dump(data, self.output if self.machine else "json"))
        else:
            render_text(self.out)

    # -- clock --------------------------------------------------------------------------------
    @property
    def clock(self):
        """The product's one clock for this invocation (``penguinctl.clock``: the environment
        may shift it, e.g. ``PENGUINCTL_TODAY`` for reproducible examples and tests)."""
        if self._clock is None:
            from penguinctl import clock
            from penguinctl.errors import ConfigError

            try:
                self._clock = clock.from_env(self.env)
            except ValueError as exc:
                raise ConfigError(str(exc), hint="unset it or fix its value") from None
        return self._clock

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return self.clock.now().date()

    # -- state store --------------------------------------------------------------------------
    @property
    def db(self):
        """The state store for commands that write: created and migrated when missing."""
        if self._db is None and self._read_db is not None:
            self._db, self._read_db = self._read_db, None  # exists and is migrated
        if self._db is None:
            from penguinctl.state.db import ensure_migrated, make_engine

            if self.settings.is_default_sqlite:
                from penguinctl.private_files import make_dirs

                make_dirs(self.settings.data_dir)
            self._db = make_engine(self.settings.state_url)
            ensure_migrated(self._db)
        return self._db

    @property
    def read_db(self):
        """The state store for read-only commands: never creates a database, file or directory
        (``NoState``, exit 2, when there is none yet)."""
        if self._db is not None:
            return self._db
        if self._read_db is None:
            from penguinctl.state.db import open_existing

            self._read_db = open_existing(self.settings.state_url)
        return self._read_db

    def actor(self) -> str:
        from penguinctl.state.audit import default_actor

        return default_actor(self.env)

    # -- secrets ------------------------------------------------------------------------------
    def secrets(self):
        """The configured secrets backend (``PENGUINCTL_SECRETS``: keystore or vault)."""
        if self._secrets is None:
            if self.settings.secrets_backend == "vault":
                from penguinctl.providers.secrets.vault import VaultBackend

                backend = VaultBackend.from_env(self.env)
            else:
                backend = self.keystore()
            if not self.any_secrets_layout:
                from penguinctl.secret_layout import require_current

                require_current(backend)
            self._secrets = backend
        return self._secrets

    def keystore(self):
        """The embedded keystore, whatever the configured backend (``secrets migrate`` reads it)."""
        from penguinctl.providers.secrets.keystore import KeystoreBackend

        if isinstance(self._secrets, KeystoreBackend):
            return self._secrets
        return KeystoreBackend(
            self.settings.keystore_dir,
            key_file=self.settings.master_key_file,
            master_key=self.settings.master_key,
        )

    def close(self) -> None:
        for engine in (self._db, self._read_db):
            if engine is not None:
                engine.dispose()
        self._db = self._read_db = None
