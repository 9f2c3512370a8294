"""How an attested session's evidence binds its runtime-data (Azure vTPM, Trustee's scheme).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # JSON {"scheme", "additional-evidence"} (kbs.runtime_binding); null: report_data_for.
    op.add_column("sessions", sa.Column("binding", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("binding")
