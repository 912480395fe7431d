"""Cursor pagination for every list: ``?limit=N&cursor=C``; the answer is ``{"items": [...],
"next_cursor": C | null}``. A cursor is opaque to clients (base64url JSON of the last row's sort
key); lists are keyset-paginated (``WHERE (sort key) > (cursor) ORDER BY sort key LIMIT n+1``),
so a page costs the same wherever it is."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import Query
from pydantic import BaseModel

from penguinctl.errors import UsageError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class PageParams:
    def __init__(self, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> None:
        self.limit = limit
        self.cursor = cursor

    def after(self) -> list[Any] | None:
        return decode(self.cursor) if self.cursor else None


async def page_params(
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page"),
    cursor: str | None = Query(None, max_length=512, description="next_cursor of a page"),
) -> PageParams:
    """The ``limit`` and ``cursor`` query parameters (an async dependency: no thread hop)."""
    return PageParams(limit, cursor)


def encode(values: Sequence[Any]) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, TypeError):
        raise UsageError("invalid cursor", hint="pass next_cursor from the previous page") from None
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values)
    ):
        raise UsageError("invalid cursor", hint="pass next_cursor from the previous page")
    return values


def keyset(stmt: Any, columns: Sequence[Any], params: PageParams, *, desc: bool = False) -> Any:
    """``stmt`` limited to the page after the cursor (one more row than asked for); ``desc``:
    newest (largest) first."""
    after = params.after()
    if after is not None:
        if len(after) != len(columns):
            raise UsageError("invalid cursor", hint="pass next_cursor from the previous page")
        values = [_typed(c, v) for c, v in zip(columns, after, strict=True)]
        left = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
        right = values[0] if len(columns) == 1 else sa.tuple_(*values)
        stmt = stmt.where(left < right if desc else left > right)
    order = [c.desc() for c in columns] if desc else list(columns)
    return stmt.order_by(*order).limit(params.limit + 1)


class Keyset:
    """``keyset`` built once, for a fixed ``stmt`` (what varies in it are bind parameters): the
    statement costs more to build than to run on the API's hottest lists. ``select(params)``
    gives the statement (``Compiled``: compiled once per dialect; ``plain``: rows as tuples)
    and the page's bind values (limit, cursor)."""

    def __init__(
        self, stmt: Any, columns: Sequence[Any], *, desc: bool = False, plain: bool = False
    ) -> None:
        self.columns = list(columns)
        order = [c.desc() for c in columns] if desc else list(columns)
        first = stmt.order_by(*order).limit(sa.bindparam("page_limit", type_=sa.Integer))
        bound = [sa.bindparam(f"page_after_{i}", type_=c.type) for i, c in enumerate(columns)]
        left = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
        right = bound[0] if len(columns) == 1 else sa.tuple_(*bound)
        later = stmt.where(left < right if desc else left > right)
        from penguinctl.state.compiled import Compiled

        self._first = Compiled(first, plain=plain)
        self._later = Compiled(
            later.order_by(*order).limit(sa.bindparam("page_limit", type_=sa.Integer)),
            plain=plain,
        )

    def select(self, params: PageParams) -> tuple[Any, dict[str, Any]]:  # (Compiled, values)
        after = params.after()
        values: dict[str, Any] = {"page_limit": params.limit + 1}
        if after is None:
            return self._first, values
        if len(after) != len(self.columns):
            raise _bad_cursor()
        for i, (c, v) in enumerate(zip(self.columns, after, strict=True)):
            values[f"page_after_{i}"] = _checked(c, v)
        return self._later, values


def _bad_cursor() -> UsageError:
    return UsageError("invalid cursor", hint="pass next_cursor from the previous page")


def _typed(column: Any, value: Any) -> Any:
    """The cursor's value bound with the column's type (a timestamp travels as ISO text)."""
    return sa.literal(_checked(column, value), type_=column.type)


def _checked(column: Any, value: Any) -> Any:
    """The cursor's value as the column's type takes it, or ``UsageError``."""
    from datetime import datetime

    kind = column.type
    if isinstance(kind, sa.DateTime):
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise _bad_cursor() from None
    else:
        wanted = (
            int if isinstance(kind, sa.Integer) else str if isinstance(kind, sa.String) else object
        )
        if not isinstance(value, wanted):
            raise _bad_cursor()
        if isinstance(value, int) and not -(2**31) <= value < 2**31:  # 32-bit columns on PG
            raise _bad_cursor()
    return value


def page(
    rows: Sequence[Any],
    params: PageParams,
    key: Callable[[Any], Sequence[Any]],
    render: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """The page of ``rows`` (fetched by ``keyset``): ``key(row)`` is the row's sort key."""
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    cursor = encode(key(rows[-1])) if more and rows else None
    return {"items": [render(r) for r in rows], "next_cursor": cursor}


def page_list(
    items: Sequence[Any],
    params: PageParams,
    key: Callable[[Any], Sequence[Any]],
    render: Callable[[Any], dict[str, Any]] = lambda x: x,
) -> dict[str, Any]:
    """Pagination of a list already in memory, sorted by ``key`` (small lists only)."""
    after = params.after()
    ordered = sorted(items, key=lambda i: list(key(i)))
    if after is not None:
        ordered = [i for i in ordered if list(key(i)) > after]
    return page(ordered[: params.limit + 1], params, key, render)
