"""The ``/api/v1`` routers, one module per resource."""

from __future__ import annotations

from typing import Any


def routers() -> list[Any]:
    from penguinctl.web.api.routes import activity, apikeys, me, resources, specs

    return [me.router, apikeys.router, specs.router, resources.router, activity.router]
