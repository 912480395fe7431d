"""Reads written once, run by whichever driver the caller has.

A *read* here is a generator (``Steps``): it yields ``(statement, bind values)``, is sent the
statement's rows back, and returns its result. It does no I/O itself, so one definition serves
three runners:

- ``run(steps, session_or_connection)``: through SQLAlchemy (the CLI, the services);
- ``run_on(steps, dbapi_connection, dialect)``: on a DBAPI connection, skipping
  SQLAlchemy's per-execution work for the statements wrapped in ``Compiled`` (the API's hot
  reads on SQLite, in place on the event loop);
- ``run_async(steps, aconn)``: on a psycopg ``AsyncConnection``, awaited on the event loop (the
  API's reads on PostgreSQL: no thread, no hand-off).

``Compiled(stmt)`` compiles a Core select once per dialect: its SQL, its bind parameters in
the driver's order with SQLAlchemy's own bind and result processors (a JSON path, a JSON
column or a SQLite timestamp converted exactly as SQLAlchemy would), and a named-tuple row
(``row.name``, as SQLAlchemy's rows read). Running it costs the driver's call and little else:
SQLAlchemy's execution context cost more than the query on the API's hottest read
(bench/README.md, "The HTTP API under load"). A statement yielded without ``Compiled`` (built
for one request) is compiled for that request."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
Step = tuple[Any, dict[str, Any]]  # a statement (a Core select or a Compiled) and bind values
Steps = Generator[Step, list[Any], T]


class Compiled:
    """``stmt`` (a Core select), compiled on first use for each dialect it runs on. ``plain``:
    its rows are the driver's tuples, read by position (a long page's rows are made faster so;
    a statement whose values need converting cannot be plain)."""

    def __init__(self, stmt: Any, *, plain: bool = False) -> None:
        self.stmt = stmt
        self.plain = plain
        self._by_dialect: dict[str, _Prepared] = {}

    def prepared(self, dialect: Any) -> _Prepared:
        key = f"{dialect.name}+{dialect.driver}"
        found = self._by_dialect.get(key)
        if found is None:
            found = self._by_dialect[key] = _Prepared(self.stmt, dialect, plain=self.plain)
        return found


class _Prepared:
    """One statement compiled for one dialect (see the module's doc)."""

    def __init__(self, stmt: Any, dialect: Any, *, plain: bool = False) -> None:
        compiled = stmt.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise TypeError("Compiled: statements with expanding or literal-execute parameters "
                            "are run through SQLAlchemy")  # fmt: skip
        self.sql = str(compiled)
        self.positional = dialect.paramstyle in ("qmark", "numeric", "format")
        self.names: list[str] = list(compiled.positiontup or []) if self.positional else []
        self.required: set[str] = set()
        self.defaults: dict[str, Any] = {}  # the statement's own values (a LIMIT 1, a JSON path)
        self.bind_processors: dict[str, Callable[[Any], Any]] = {}
        for name, param in compiled.binds.items():
            process = param.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.bind_processors[name] = process
            if param.required:
                self.required.add(name)
            else:
                value = param.effective_value
                self.defaults[name] = process(value) if process is not None else value
        columns = list(stmt.selected_columns)
        self.row = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        self.processors = processors if any(processors) else None
        if plain and self.processors:
            raise TypeError("Compiled(plain=True): the statement's values need converting")
        self.plain = plain

    def bind(self, values: dict[str, Any]) -> Any:
        """The bind values in the driver's form (a tuple for qmark, else a dict)."""
        missing = self.required.difference(values)
        if missing:
            raise sa.exc.ArgumentError(f"a value is required for {sorted(missing)}")
        merged = {**self.defaults}
        for name, value in values.items():
            process = self.bind_processors.get(name)
            merged[name] = process(value) if process is not None else value
        if self.positional:
            return tuple(merged[n] for n in self.names)
        return merged

    def rows(self, raw: list[Any]) -> list[Any]:
        if self.plain:
            return raw
        processors = self.processors
        if processors is None:
            return list(map(self.row._make, raw))
        make = self.row._make
        # (as SQLAlchemy does: every value through its column's processor, None included)
        return [
            make([v if p is None else p(v) for p, v in zip(processors, r, strict=True)])
            for r in raw
        ]


def _prepared(stmt: Any, dialect: Any) -> _Prepared:
    if isinstance(stmt, Compiled):
        return stmt.prepared(dialect)
    return _Prepared(stmt, dialect)  # a statement built for one request


def run(steps: Steps[T], executor: Any) -> T:
    """``steps`` through SQLAlchemy: ``executor`` is a ``Session`` or a ``Connection``."""
    try:
        stmt, values = next(steps)
        while True:
            plain = stmt.stmt if isinstance(stmt, Compiled) else stmt
            stmt, values = steps.send(executor.execute(plain, values).all())
    except StopIteration as done:
        return done.value


def run_on(steps: Steps[T], dbapi: Any, dialect: Any) -> T:
    """``steps`` on a DBAPI connection of ``dialect`` (see the module's doc)."""
    try:
        stmt, values = next(steps)
        while True:
            prep = _prepared(stmt, dialect)
            cursor = dbapi.cursor()
            try:
                cursor.execute(prep.sql, prep.bind(values))
                raw = cursor.fetchall()
            finally:
                cursor.close()
            stmt, values = steps.send(prep.rows(raw))
    except StopIteration as done:
        return done.value


async def run_async(steps: Steps[T], aconn: Any, dialect: Any) -> T:
    """``steps`` on a psycopg ``AsyncConnection`` (``dialect``: the engine's, for compiling)."""
    try:
        stmt, values = next(steps)
        while True:
            prep = _prepared(stmt, dialect)
            cursor = aconn.cursor()
            try:
                await cursor.execute(prep.sql, prep.bind(values))
                raw = await cursor.fetchall()
            finally:
                await cursor.close()
            stmt, values = steps.send(prep.rows(raw))
    except StopIteration as done:
        return done.value
