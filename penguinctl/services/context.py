"""``ServiceContext``: what a service needs, built from the CLI's ``AppContext``
(``from_cli``) or from the HTTP app's state and the caller's key (``from_web``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass
class ServiceContext:
    db: Any  # SQLAlchemy engine of the state store
    secrets: Callable[[], Any]  # the secrets backend, opened on first use
    env: dict[str, str]
    actor: str  # the audit actor: user@host, ci:github, key:<id>
    clock: Any
    settings_loader: Callable[[], Any]
    tenant: str | None = None  # set when a tenant key acts: the only tenant it may touch

    @property
    def settings(self) -> Any:
        return self.settings_loader()

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return self.clock.now().date()


def from_cli(app: Any, *, read_only: bool = False) -> ServiceContext:
    return ServiceContext(
        db=app.read_db if read_only else app.db,
        secrets=app.secrets,
        env=app.env,
        actor=app.actor(),
        clock=app.clock,
        settings_loader=lambda: app.settings,
    )


def from_web(web: Any, principal: Any) -> ServiceContext:
    from penguinctl import clock as clocks

    def settings() -> Any:
        found = getattr(web, "settings", None)
        if found is None:
            from penguinctl.settings import load_settings

            found = load_settings(env=web.env)
            web.settings = found
        return found

    return ServiceContext(
        db=web.db,
        secrets=web.secrets,
        env=web.env,
        actor=principal.actor,
        clock=web.clock or clocks.current(),
        settings_loader=settings,
        tenant=principal.tenant,
    )
