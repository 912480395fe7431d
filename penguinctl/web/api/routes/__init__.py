"""The ``/api/v1`` routers, one module per resource."""

from __future__ import annotations

from typing import Any


def routers() -> list[Any]:
    from penguinctl.web.api.routes import (
        activity,
        apikeys,
        campaigns,
        me,
        records,
        resources,
        specs,
    )

    return [
        me.router,
        apikeys.router,
        specs.router,
        resources.router,
        campaigns.router,
        records.router,
        activity.router,
    ]
