"""AppContext: the one injectable object commands use (settings, output, consoles, state, secrets).

Built per invocation by the root callback; nothing here is created at import time. Heavy modules
(SQLAlchemy, the spec engine, cryptography) are imported only when a command asks for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from penguinctl.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    output: str = "text"
    yes: bool = False
    debug: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    _db: Any = None
    _clock: Any = None
    _secrets: Any = None
    _out: Any = None
    _err: Any = None

    # -- consoles -----------------------------------------------------------------------------
    @property
    def out(self):
        if self._out is None:
            from rich.console import Console

            self._out = Console(soft_wrap=True, highlight=False)
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
        from penguinctl.cli.render import dump

        if self.machine or render_text is None:
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
        if self._db is None:
            from penguinctl.state.db import ensure_migrated, make_engine

            if self.settings.is_default_sqlite:
                from penguinctl.private_files import make_dirs

                make_dirs(self.settings.data_dir)
            self._db = make_engine(self.settings.state_url)
            ensure_migrated(self._db)
        return self._db

    def actor(self) -> str:
        from penguinctl.state.audit import default_actor

        return default_actor(self.env)

    # -- secrets ------------------------------------------------------------------------------
    def secrets(self):
        """The configured secrets backend (``PENGUINCTL_SECRETS``: keystore or vault)."""
        if self._secrets is None:
            if self.settings.secrets_backend == "vault":
                from penguinctl.providers.secrets.vault import VaultBackend

                self._secrets = VaultBackend.from_env(self.env)
            else:
                self._secrets = self.keystore()
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
        if self._db is not None:
            self._db.dispose()
            self._db = None
