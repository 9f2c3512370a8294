"""Transport keys of attested sessions; user and group release options of resources.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Hex of the kernel's CurveZMQ public key bound in the session's evidence ("" = none).
    op.add_column("sessions", sa.Column("transport_key", sa.Text, nullable=True))
    # JSON lists of the user and group names a release is restricted to (NULL: anyone).
    op.add_column("resources", sa.Column("users", sa.Text, nullable=True))
    op.add_column("resources", sa.Column("groups", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("groups")
        batch.drop_column("users")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("transport_key")
