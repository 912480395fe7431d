"""Alembic environment: penguinctl passes an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from penguinctl.state.schema import metadata  # every table module's SQLModel classes

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - penguinctl always passes a connection
    raise RuntimeError("run migrations through penguinctl (penguinctl init)")

context.configure(
    connection=connection,
    target_metadata=metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
