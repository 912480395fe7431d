"""Column types and field helpers shared by the SQLModel table classes.

Migrations keep their own copies on purpose: a migration must not change when this does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """A stored timestamp as an aware datetime: SQLite returns them naive (written in UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def ts_field(nullable: bool = False) -> Any:
    """A SQLModel field for a timezone-aware timestamp column: nullable (default None), or not
    null with "now" from the product clock as the default."""
    from sqlmodel import Field

    if nullable:
        return Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))
    return Field(
        default_factory=_now, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )


def _now() -> datetime:
    from penguinctl import clock

    return clock.now()


def json_field(default_factory: Any = dict) -> Any:
    """A SQLModel field for a not-null JSON column (JSONB on PostgreSQL)."""
    from sqlmodel import Field

    return Field(default_factory=default_factory, sa_column=sa.Column(JsonType, nullable=False))
