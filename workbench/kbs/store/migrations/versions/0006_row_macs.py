"""Authenticated rows: ``row_mac`` on resources, approvals and analysts, and every existing
row authenticated under the store's KEK (workbench.kbs.row_mac).

The broker runs this with its KEK (``Store.migrate(kek=...)``), having checked it against
the store's check value first, so rows are never authenticated under a wrong key. A store
that holds such rows cannot be upgraded without the KEK: start the broker on it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("resources", "approvals", "analysts")


def upgrade() -> None:
    from workbench.errors import InputError
    from workbench.kbs.broker_key import check_kek
    from workbench.kbs.row_mac import COLUMN, FIELDS, KEYS

    for name in TABLES:
        op.add_column(name, sa.Column(COLUMN, sa.String(64), nullable=True))
    conn = op.get_bind()
    kek = context.config.attributes.get("kek")
    counts = {name: conn.execute(sa.select(sa.func.count())
                                 .select_from(sa.table(name))).scalar_one()
              for name in TABLES}
    if not any(counts.values()):
        return
    if kek is None:
        raise InputError("this store's rows must be authenticated under its key-encryption "
                           "key while it is upgraded: start the broker on it (it holds the "
                           "KEK), or pass kek= to Store.migrate")
    check_kek(conn, kek)
    for name in TABLES:
        table = sa.table(name, *(sa.column(c) for c in (*FIELDS[name], COLUMN)))
        primary = table.c[KEYS[name]]
        for row in conn.execute(sa.select(table)).mappings().all():
            conn.execute(sa.update(table).where(primary == row[KEYS[name]])
                         .values({COLUMN: kek.row_key.mac(name, row)}))
    # What the broker reports in its audit log once it has its signing key.
    context.config.attributes["authenticated_rows"] = counts


def downgrade() -> None:
    from workbench.kbs.row_mac import COLUMN

    for name in TABLES:
        with op.batch_alter_table(name) as batch:
            batch.drop_column(COLUMN)
