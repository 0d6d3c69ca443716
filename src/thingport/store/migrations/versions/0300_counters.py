"""counters: shared counters of the login-failure limit and the OceanConnect flow control

Revision ID: counters_0300
Revises: cluster_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "counters_0300"
down_revision = "cluster_0003"
branch_labels = ("counters",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_counters",
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("slot", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "slot", name="pk_shared_counters"),
    )
    op.create_index("ix_shared_counters_start_time", "shared_counters", ["start_time"])


def downgrade() -> None:
    op.drop_index("ix_shared_counters_start_time", "shared_counters")
    op.drop_table("shared_counters")
