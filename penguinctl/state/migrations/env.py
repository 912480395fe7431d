"""Alembic environment: penguinctl passes an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

# importing the table modules registers their tables
import penguinctl.alerts.tables
import penguinctl.control.tables
import penguinctl.events.tables
import penguinctl.identity.tables
import penguinctl.recovery.tables
import penguinctl.services.tables
import penguinctl.state.models
import penguinctl.webhooks.tables  # noqa: F401

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - penguinctl always passes a connection
    raise RuntimeError("run migrations through penguinctl (penguinctl init)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
