"""Column types shared by the SQLModel tables and the SQLAlchemy Core table views.

Migrations keep their own copies on purpose: a migration must not change when this does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


def ts_column(name: str, nullable: bool = False) -> sa.Column:
    """A timezone-aware timestamp column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """A stored timestamp as an aware datetime: SQLite returns them naive (written in UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
