"""Alembic environment: the broker runs migrations itself, on a connection it opened."""

from __future__ import annotations

from alembic import context

from workbench.kbs.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("kbs migrations run online only, through workbench.kbs.store.migrate")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
