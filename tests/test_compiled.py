"""``penguinctl.state.compiled``: a read written once as steps answers the same through
SQLAlchemy (the CLI), on the DBAPI connection (the API on SQLite) and on a psycopg
``AsyncConnection`` (the API on PostgreSQL), on both backends; and the API's PostgreSQL
connections (``web.api.reads.AsyncReads``) survive a database that dropped them."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from penguinctl.errors import NotFound
from penguinctl.resources import ResourceKey
from penguinctl.services.resources import describe, describe_steps
from penguinctl.state import compiled, repo
from penguinctl.state.compiled import Compiled
from penguinctl.state.db import session_scope
from penguinctl.state.models import ResourceRow
from penguinctl.web.api.pages import Keyset, PageParams, encode
from penguinctl.web.api.reads import AsyncReads

T = ResourceRow.__table__


def _fill(engine: Any) -> None:
    """Two tenants with the same domain name, each with keys, records and mailboxes, and
    values that must come back converted alike (nested JSON, text, floats, timestamps)."""
    rows: list[tuple[ResourceKey, dict[str, Any]]] = []
    for tenant in ("acme", "globex"):
        rows.append((ResourceKey("tenant", "", tenant), {"plan": "business", "contact": None}))
        for i in range(7):
            domain = f"d{i}.example"
            rows.append((ResourceKey("domain", tenant, domain), {
                "server": "mx", "dns": "zones", "dmarc": {"policy": "none", "pct": 50.5},
                "note": f"{tenant} ünïcode ✓", "mailboxes": [{"local": "john"}]}))  # fmt: skip
            rows.append((ResourceKey("dkim", tenant, f"{domain}/s{i}"),
                         {"domain": domain, "selector": f"s{i}", "bits": 2048}))  # fmt: skip
            rows.append((ResourceKey("dnsrecord", tenant, f"{domain}/TXT/_dmarc"),
                         {"zone": domain, "name": "_dmarc", "type": "TXT", "ttl": 300,
                          "values": [f"v=DMARC1; p=none; rua=mailto:{tenant}@x"]}))  # fmt: skip
            mailbox = {"domain": domain, "display_name": "John", "daily_limit": 30}
            rows.append((ResourceKey("mailbox", tenant, f"john@{domain}"), mailbox))
    rows.append((ResourceKey("server", "", "shared-mx"), {"ips": ["192.0.2.1"], "cost": 4.99}))
    with session_scope(engine) as session:
        for key, data in rows:
            repo.upsert_resource(session, key=key, provider="test", data=data)


@pytest.fixture
def engine(migrated_engine):
    _fill(migrated_engine)
    return migrated_engine


def _through_sqlalchemy(engine: Any, steps: Any) -> Any:
    with session_scope(engine) as session:
        return compiled.run(steps(), session)


def _on_dbapi(engine: Any, steps: Any) -> Any:
    with engine.connect() as conn:
        return compiled.run_on(steps(), conn.connection.dbapi_connection, engine.dialect)


def _read_engine_thread(engine: Any, steps: Any) -> Any:
    """The API's path for a PostgreSQL driver other than psycopg: SQLAlchemy on the read
    engine, in a thread."""
    from types import SimpleNamespace

    from penguinctl.web.api.reads import reading

    web = SimpleNamespace(db=engine, read_db=None)
    try:
        return asyncio.run(asyncio.to_thread(reading, web, lambda c: compiled.run(steps(), c)))
    finally:
        web.read_db.dispose()


def _async(engine: Any, steps: Any) -> Any:
    async def go() -> Any:
        pool = AsyncReads(engine, 1, asyncio.get_running_loop())
        try:
            return await pool.read(steps)
        finally:
            pool.close()

    return asyncio.run(go())


def _answers(engine: Any, steps: Any) -> list[Any]:
    """``steps``'s result (or the error's class and text) by every runner the backend has."""
    runners = [_through_sqlalchemy, _on_dbapi, _read_engine_thread]
    if engine.dialect.name == "postgresql":
        runners.append(_async)
    found = []
    for runner in runners:
        try:
            found.append(runner(engine, steps))
        except NotFound as exc:
            found.append((type(exc).__name__, str(exc)))
    return found


CASES = [
    ("domain", "d3.example", "acme"),
    ("domain", "d3.example", "globex"),
    ("domain", "d3.example", None),  # a platform key: the first tenant's, then its related rows
    ("domain", "d3.example", "initech"),  # not that tenant's: not found
    ("domain", "missing.example", "acme"),
    ("tenant", "acme", None),
    ("server", "shared-mx", None),
    ("server", "shared-mx", "acme"),  # a shared server is not the tenant's
    ("mailbox", "john@d1.example", "globex"),
    ("dkim", "d2.example/s2", "acme"),
]


@pytest.mark.parametrize("kind,name,tenant", CASES)
def test_describe_answers_alike_on_every_runner(engine, kind, name, tenant) -> None:
    answers = _answers(engine, lambda: describe_steps(kind, name, tenant=tenant))
    assert all(a == answers[0] for a in answers), answers
    with session_scope(engine) as session:
        try:
            expected: Any = describe(session, kind, name, tenant=tenant)
        except NotFound as exc:
            expected = ("NotFound", str(exc))
    assert answers[0] == expected
    if isinstance(expected, dict) and kind == "domain":
        # the values came back converted: JSON as Python values, timestamps as text
        assert expected["data"]["dmarc"] == {"policy": "none", "pct": 50.5}
        assert expected["data"]["note"].endswith("ünïcode ✓")
        assert datetime.fromisoformat(expected["created_at"]).year >= 2000
        assert expected["mailboxes"] == ["john@d3.example"]
        assert [r["zone"] for r in expected["records"]] == ["d3.example"]
        assert expected["tenant"] == (tenant or "acme")
        assert (tenant or "acme") in expected["records"][0]["values"][0]


def _page_steps(keyset: Keyset, params: PageParams, tenant: str | None) -> Any:
    query, values = keyset.select(params)
    if tenant is not None:
        values["tenant"] = tenant
    rows = yield query, values
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("plain", [True, False])
@pytest.mark.parametrize("scoped", [True, False])
def test_keyset_pages_alike_on_every_runner(engine, plain, scoped) -> None:
    from penguinctl.services.resources import list_select

    stmt, _ = list_select("domain", tenant=sa.bindparam("tenant") if scoped else None)
    keyset = Keyset(stmt, [T.c.name, T.c.tenant], plain=plain)
    tenant = "globex" if scoped else None
    seen: list[tuple[Any, ...]] = []
    cursor = None
    while True:
        params = PageParams(3, cursor)
        answers = _answers(engine, lambda p=params: _page_steps(keyset, p, tenant))
        assert all(a == answers[0] for a in answers), answers
        rows = answers[0]
        seen += rows[:3]
        if len(rows) <= 3:
            break
        cursor = encode(list(rows[2][:2]))
    assert len(seen) == (7 if scoped else 14)
    assert seen == sorted(seen, key=lambda r: (r[0], r[1]))
    assert {r[1] for r in seen} == ({"globex"} if scoped else {"acme", "globex"})
    assert seen[0][2:] == ("mx", "zones", "none")  # JSON paths read alike (bind processors)


def test_a_statement_built_for_one_request_runs_alike(engine) -> None:
    def steps() -> Any:
        rows = yield (sa.select(T.c.name, T.c.data, T.c.updated_at)
                      .where(T.c.kind == "mailbox", T.c.name.startswith("john@d1", autoescape=True))
                      .order_by(T.c.tenant).limit(5)), {}  # fmt: skip
        return [(r.name, r.data, r.updated_at) for r in rows]

    answers = _answers(engine, steps)
    assert all(a == answers[0] for a in answers), answers
    assert len(answers[0]) == 2 and answers[0][0][1]["display_name"] == "John"
    assert isinstance(answers[0][0][2], datetime)


def test_a_missing_value_and_a_plain_statement_needing_conversion_are_refused(engine) -> None:
    def steps() -> Any:
        yield Compiled(sa.select(T.c.name).where(T.c.name == sa.bindparam("name"))), {}

    with pytest.raises(sa.exc.ArgumentError, match="name"):
        _on_dbapi(engine, steps)
    converted = Compiled(sa.select(T.c.updated_at), plain=True)
    if engine.dialect.name == "sqlite":  # timestamps and JSON arrive as text there
        with pytest.raises(TypeError, match="converting"):
            converted.prepared(engine.dialect)


# PostgreSQL's asynchronous connections only (the state_url fixture on that backend alone)
pg_only = pytest.mark.parametrize("state_url", ["postgres"], indirect=True)


def _domain(tenant: str) -> Any:
    return lambda: describe_steps("domain", "d1.example", tenant=tenant)


@pg_only
def test_connections_the_database_dropped_are_replaced(engine) -> None:
    async def go() -> None:
        pool = AsyncReads(engine, 3, asyncio.get_running_loop())
        try:
            # three connections made (three reads at once), then all dropped, as by a restart
            answers = await asyncio.gather(
                *(pool.read(_domain(t)) for t in ("acme", "globex", "acme"))
            )
            assert [a["tenant"] for a in answers] == ["acme", "globex", "acme"]
            dropped = list(pool._idle)
            assert len(dropped) == 3
            with engine.connect() as admin:
                for conn in dropped:
                    admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                  {"pid": conn.info.backend_pid})  # fmt: skip
            await asyncio.sleep(0.2)
            # the first read after it fails once on a dropped connection, then runs on a new one
            assert (await pool.read(_domain("globex")))["tenant"] == "globex"
            (fresh,) = pool._idle
            assert fresh not in dropped and all(c.closed for c in dropped)
        finally:
            pool.close()

    asyncio.run(go())


@pg_only
def test_a_cancelled_read_does_not_give_its_connection_back(engine) -> None:
    def slow() -> Any:
        rows = yield sa.select(sa.func.pg_sleep(5)), {}
        return rows

    async def go() -> None:
        pool = AsyncReads(engine, 1, asyncio.get_running_loop())
        try:
            task = asyncio.create_task(pool.read(slow))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool._idle == []
            # the one slot is free again and the next read gets a working connection
            answer = await asyncio.wait_for(pool.read(_domain("acme")), 10)
            assert answer["name"] == "d1.example"
        finally:
            pool.close()

    asyncio.run(go())


@pg_only
def test_a_read_error_or_a_miss_keeps_a_healthy_connection(engine) -> None:
    def wrong() -> Any:
        yield sa.select(sa.text("no_such_column")).select_from(T), {}

    async def go() -> None:
        import psycopg

        pool = AsyncReads(engine, 1, asyncio.get_running_loop())
        try:
            with pytest.raises(psycopg.errors.UndefinedColumn):
                await pool.read(wrong)
            (conn,) = pool._idle  # autocommit: the failed statement left nothing open
            assert (await pool.read(_domain("acme")))["tenant"] == "acme"
            with pytest.raises(NotFound):  # a 404 does not cost a connection either
                await pool.read(lambda: describe_steps("domain", "nope.example", tenant="acme"))
            assert pool._idle == [conn]
        finally:
            pool.close()

    asyncio.run(go())


def test_timestamps_come_back_alike(engine) -> None:
    def steps() -> Any:
        rows = yield Compiled(sa.select(T.c.created_at).order_by(T.c.id).limit(1)), {}
        return rows[0].created_at

    answers = _answers(engine, steps)
    assert all(a == answers[0] and type(a) is datetime for a in answers), answers
    assert all(a.utcoffset() == answers[0].utcoffset() for a in answers)
