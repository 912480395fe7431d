"""One schema, declared once (issue 18, item 3): every table is a SQLModel class, the migrations
build exactly what the classes declare (Alembic's autogenerate comparison: tables, columns,
types, nullability, server defaults, indexes, unique constraints, foreign keys, on SQLite and on
PostgreSQL), and no module declares a table with SQLAlchemy Core again."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from clitools import REPO

from penguinctl.state.schema import metadata, table_modules


def _differences(engine: sa.Engine, target: sa.MetaData) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, target)


def test_the_migrations_build_exactly_the_models(migrated_engine):
    target = metadata()
    assert len(target.tables) >= 36
    with migrated_engine.connect() as conn:
        stored = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    assert stored == set(target.tables)
    assert _differences(migrated_engine, target) == []


def _changed_copy(change) -> sa.MetaData:
    copy = sa.MetaData()
    for table in metadata().tables.values():
        table.to_metadata(copy)
    change(copy)
    return copy


def _nullable(md: sa.MetaData) -> None:
    md.tables["invoices"].c["stripe_status"].nullable = False


def _index(md: sa.MetaData) -> None:
    sa.Index("ix_probe", md.tables["billing_alerts"].c["kind"])


def _server_default(md: sa.MetaData) -> None:
    md.tables["campaign_mailboxes"].c["day_count"].server_default = None


def _type(md: sa.MetaData) -> None:
    md.tables["invoices"].c["currency"].type = sa.String(8)


def _foreign_key(md: sa.MetaData) -> None:  # the one migration 0016 dropped
    md.tables["leads"].append_constraint(
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name="fk_leads_campaign", ondelete="CASCADE"
        )
    )


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (_nullable, "modify_nullable"),
        (_index, "add_index"),
        (_server_default, "modify_default"),
        (_type, "modify_type"),
        (_foreign_key, "add_fk"),
    ],
)
def test_the_comparison_sees_a_model_that_differs(migrated_engine, change, kind):
    found = _differences(migrated_engine, _changed_copy(change))
    flat = [d for item in found for d in (item if isinstance(item, list) else [item])]
    assert [d[0] for d in flat] == [kind]


def test_every_table_is_a_sqlmodel_class_in_a_table_module():
    from sqlmodel import SQLModel

    metadata()
    classes = {m.class_.__table__.name: m.class_.__module__ for m in SQLModel._sa_registry.mappers}
    assert set(classes) == set(metadata().tables)
    assert set(classes.values()) <= set(table_modules())


def _core_tables(path: Path, root: Path = REPO) -> list[str]:
    """Where a file calls SQLAlchemy's ``Table(...)`` (``sa.Table``, or ``Table`` imported from
    sqlalchemy; rich's ``Table`` is another thing)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "sqlalchemy"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            names |= {a.asname or a.name for a in node.names if a.name == "Table"}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id in names) or (
            isinstance(func, ast.Attribute)
            and func.attr == "Table"
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_module_declares_a_table_with_core(tmp_path):
    found = []
    for path in sorted((REPO / "penguinctl").rglob("*.py")):
        if "migrations" not in path.parts:
            found += _core_tables(path)
    assert found == []
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sqlalchemy as sa\nfrom sqlalchemy import Table as T\nfrom rich.table import Table"
        "\nsa.Table('x', sa.MetaData())\nT('y', sa.MetaData())\nTable(title='z')\n"
    )
    assert [w.rsplit(":", 1)[1] for w in _core_tables(probe, tmp_path)] == ["4", "5"]
