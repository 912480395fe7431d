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


def matching_order(routers: list[Any]) -> list[Any]:
    """The routers as requests are matched against them: recorded resources (the most read)
    first. Their paths do not overlap another router's, so the order changes nothing but the
    number of route patterns a request is tried against."""
    from penguinctl.web.api.routes import resources

    return [resources.router] + [r for r in routers if r is not resources.router]
