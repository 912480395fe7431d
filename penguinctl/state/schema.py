"""The schema, declared once: every table is a SQLModel class in a module named ``tables.py`` or
``models.py`` somewhere in penguinctl. ``metadata()`` imports all of them and returns
``SQLModel.metadata``: what the migrations are generated from (``alembic revision
--autogenerate``, see README: Development) and what tests/test_schema.py compares the migrated
database with. Core statements use the classes' ``__table__``; no module declares another
module's table again.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sqlalchemy import MetaData

PACKAGE = Path(__file__).resolve().parents[1]
TABLE_MODULES = ("tables.py", "models.py")


def table_modules() -> list[str]:
    """Dotted names of every module that may declare tables, sorted."""
    found = []
    for name in TABLE_MODULES:
        for path in PACKAGE.rglob(name):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(PACKAGE.parent).with_suffix("")
            found.append(".".join(rel.parts))
    return sorted(found)


def metadata() -> MetaData:
    """``SQLModel.metadata`` with every penguinctl table registered."""
    from sqlmodel import SQLModel

    for module in table_modules():
        importlib.import_module(module)
    return SQLModel.metadata
