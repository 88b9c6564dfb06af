"""usage events count messages (a request with n choices is n messages)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("messages", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(
            sa.Column("overage_messages", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.execute(
        "UPDATE usage_events SET messages = CASE WHEN counted THEN 1 ELSE 0 END, "
        "overage_messages = CASE WHEN overage THEN 1 ELSE 0 END"
    )
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_column("overage")
        batch_op.drop_column("counted")


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("counted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("overage", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE usage_events SET counted = messages > 0, overage = overage_messages > 0")
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_column("overage_messages")
        batch_op.drop_column("messages")
