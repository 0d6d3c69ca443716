"""registry at scale: a device counter on each product (the per-product limit without a count(*))

Revision ID: registry_0200
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "registry_0200"
down_revision = "0001"
branch_labels = ("registry",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE products SET device_count = "
               "(SELECT count(*) FROM devices WHERE devices.product_key = products.product_key)")


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("device_count")
