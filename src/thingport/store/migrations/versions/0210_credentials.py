"""rotation with overlap: a device's and an application's previous secret during a grace period, and
each device's credential history

Revision ID: credentials_0210
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "credentials_0210"
down_revision = "0001"
branch_labels = ("credentials",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_device_key", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("prev_secret_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("prev_until", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_secret_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("prev_until", sa.BigInteger(), nullable=True))
    op.create_table(
        "device_credentials",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("asset_id", sa.String(32), nullable=False),
        sa.Column("device_key", sa.String(64), nullable=False),
        sa.Column("issue_time", sa.BigInteger(), nullable=True),
        sa.Column("issued_by", sa.String(160), nullable=True),
        sa.Column("last_used", sa.BigInteger(), nullable=True),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_device_credentials"),
    )
    op.create_index("ix_device_credentials_asset_id", "device_credentials", ["asset_id"])


def downgrade() -> None:
    op.drop_index("ix_device_credentials_asset_id", table_name="device_credentials")
    op.drop_table("device_credentials")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_column("prev_until")
        batch_op.drop_column("prev_secret_enc")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("prev_until")
        batch_op.drop_column("prev_secret_enc")
        batch_op.drop_column("prev_device_key")
