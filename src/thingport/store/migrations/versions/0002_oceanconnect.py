"""OceanConnect: device registrations, tokens, subscriptions, push queue

Revision ID: 0002_oceanconnect
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_oceanconnect"
down_revision = "0001"
branch_labels = ("oceanconnect",)
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "oc_devices",
        sa.Column("asset_id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("app_key", sa.String(64), nullable=True),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("mode", sa.String(16), nullable=True),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("verify_code_enc", sa.Text(), nullable=True),
        sa.Column("verify_code_hash", sa.String(64), nullable=True),
        sa.Column("expire_time", sa.BigInteger(), nullable=True),
        sa.Column("activated", sa.Boolean(), nullable=False),
        sa.Column("psk_enc", sa.Text(), nullable=True),
        sa.Column("device_type", sa.String(256), nullable=True),
        sa.Column("location", sa.String(1024), nullable=True),
        sa.Column("info", sa.Text(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["devices.asset_id"], name=op.f("fk_oc_devices_asset_id_devices"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_oc_devices")),
        sa.UniqueConstraint("node_id", name=op.f("uq_oc_devices_node_id")),
        sa.UniqueConstraint("verify_code_hash", name=op.f("uq_oc_devices_verify_code_hash")),
    )
    op.create_index("ix_oc_devices_expire_time", "oc_devices", ["expire_time"])
    op.create_table(
        "oc_default_products",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("product_key", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.org_id"],
                                name=op.f("fk_oc_default_products_org_id_organizations")),
        sa.ForeignKeyConstraint(["product_key"], ["products.product_key"],
                                name=op.f("fk_oc_default_products_product_key_products")),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_oc_default_products")),
    )
    op.create_table(
        "oc_tokens",
        sa.Column("app_key", sa.String(64), nullable=False),
        sa.Column("access_hash", sa.String(64), nullable=False),
        sa.Column("refresh_hash", sa.String(64), nullable=False),
        sa.Column("access_expire", sa.BigInteger(), nullable=False),
        sa.Column("refresh_expire", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["app_key"], ["applications.app_key"], name=op.f("fk_oc_tokens_app_key_applications")),
        sa.PrimaryKeyConstraint("app_key", name=op.f("pk_oc_tokens")),
        sa.UniqueConstraint("access_hash", name=op.f("uq_oc_tokens_access_hash")),
        sa.UniqueConstraint("refresh_hash", name=op.f("uq_oc_tokens_refresh_hash")),
    )
    op.create_table(
        "oc_subscriptions",
        sa.Column("subscription_id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("app_key", sa.String(64), nullable=False),
        sa.Column("notify_type", sa.String(64), nullable=False),
        sa.Column("callback_url", sa.String(1024), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["app_key"], ["applications.app_key"],
                                name=op.f("fk_oc_subscriptions_app_key_applications")),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_oc_subscriptions")),
        sa.UniqueConstraint("app_key", "notify_type", name=op.f("uq_oc_subscriptions_app_key_notify_type")),
    )
    op.create_index("ix_oc_subscriptions_org_id", "oc_subscriptions", ["org_id"])
    op.create_table(
        "oc_push_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oc_push_cursor")),
    )
    op.create_table(
        "oc_pushes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(32), nullable=False),
        sa.Column("callback_url", sa.String(1024), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_time", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oc_pushes")),
    )
    op.create_index("ix_oc_pushes_subscription_id", "oc_pushes", ["subscription_id"])
    op.create_index("ix_oc_pushes_next_attempt_time", "oc_pushes", ["next_attempt_time"])


def downgrade() -> None:
    for table in ("oc_pushes", "oc_push_cursor", "oc_subscriptions", "oc_tokens", "oc_default_products",
                  "oc_devices"):
        op.drop_table(table)
