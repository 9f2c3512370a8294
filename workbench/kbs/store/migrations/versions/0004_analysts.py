"""Analysts the data owner registered, and the certificate of each sealed session.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysts",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(80), nullable=False, unique=True),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("added_at", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.String(40), nullable=True),
    )
    # JSON of the analyst's certificate of the session's keys (null: not certified).
    op.add_column("sessions", sa.Column("session_certificate", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("session_certificate")
    op.drop_table("analysts")
