"""living platform: end users, sessions, homes, bindings, product metadata, provisioning state

Revision ID: living_0100
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "living_0100"
down_revision = "0001"
branch_labels = ("living",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "living_users",
        sa.Column("identity_id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organizations.org_id",
                  name="fk_living_users_org_id_organizations"), nullable=False),
        sa.Column("login", sa.String(128), nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("identity_id", name="pk_living_users"),
        sa.UniqueConstraint("org_id", "login", name="uq_living_users_org_id_login"),
    )
    op.create_table(
        "living_auth_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("identity_id", sa.String(40), sa.ForeignKey(
            "living_users.identity_id", name="fk_living_auth_codes_identity_id_living_users"), nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
        sa.Column("used_time", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_living_auth_codes"),
    )
    op.create_index("ix_living_auth_codes_identity_id", "living_auth_codes", ["identity_id"])
    op.create_table(
        "living_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("refresh_hash", sa.String(64), nullable=False),
        sa.Column("identity_id", sa.String(40), sa.ForeignKey(
            "living_users.identity_id", name="fk_living_sessions_identity_id_living_users"), nullable=False),
        sa.Column("app_key", sa.String(64), sa.ForeignKey(
            "applications.app_key", name="fk_living_sessions_app_key_applications"), nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("token_expire", sa.BigInteger, nullable=False),
        sa.Column("refresh_expire", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_living_sessions"),
        sa.UniqueConstraint("refresh_hash", name="uq_living_sessions_refresh_hash"),
    )
    op.create_index("ix_living_sessions_identity_id", "living_sessions", ["identity_id"])
    op.create_table(
        "living_homes",
        sa.Column("home_id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(64), sa.ForeignKey(
            "organizations.org_id", name="fk_living_homes_org_id_organizations"), nullable=False),
        sa.Column("owner_id", sa.String(40), sa.ForeignKey(
            "living_users.identity_id", name="fk_living_homes_owner_id_living_users"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("home_id", name="pk_living_homes"),
    )
    op.create_index("ix_living_homes_owner_id", "living_homes", ["owner_id"])
    op.create_table(
        "living_bindings",
        sa.Column("asset_id", sa.String(32), sa.ForeignKey(
            "devices.asset_id", name="fk_living_bindings_asset_id_devices", ondelete="CASCADE"), nullable=False),
        sa.Column("identity_id", sa.String(40), sa.ForeignKey(
            "living_users.identity_id", name="fk_living_bindings_identity_id_living_users"), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("home_id", sa.String(40), sa.ForeignKey(
            "living_homes.home_id", name="fk_living_bindings_home_id_living_homes"), nullable=True),
        sa.Column("owned", sa.Boolean, nullable=False),
        sa.Column("bind_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "identity_id", name="pk_living_bindings"),
    )
    op.create_index("ix_living_bindings_identity", "living_bindings", ["identity_id", "bind_time"])
    op.create_table(
        "living_products",
        sa.Column("product_key", sa.String(32), sa.ForeignKey(
            "products.product_key", name="fk_living_products_product_key_products", ondelete="CASCADE"),
            nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("net_type", sa.Integer, nullable=False),
        sa.Column("category_key", sa.String(64), nullable=True),
        sa.Column("category_name", sa.String(128), nullable=True),
        sa.Column("category_id", sa.BigInteger, nullable=True),
        sa.Column("bind_window_s", sa.Integer, nullable=True),
        sa.Column("require_permit_join", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("product_key", name="pk_living_products"),
    )
    op.create_table(
        "living_bind_tokens",
        sa.Column("asset_id", sa.String(32), sa.ForeignKey(
            "devices.asset_id", name="fk_living_bind_tokens_asset_id_devices", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("report_time", sa.BigInteger, nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
        sa.Column("used_time", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("asset_id", name="pk_living_bind_tokens"),
    )
    op.create_index("ix_living_bind_tokens_token_hash", "living_bind_tokens", ["token_hash"])
    op.create_table(
        "living_enrollees",
        sa.Column("registrar_id", sa.String(32), sa.ForeignKey(
            "devices.asset_id", name="fk_living_enrollees_registrar_id_devices", ondelete="CASCADE"), nullable=False),
        sa.Column("enrollee_id", sa.String(32), sa.ForeignKey(
            "devices.asset_id", name="fk_living_enrollees_enrollee_id_devices", ondelete="CASCADE"), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("ssid", sa.String(64), nullable=False),
        sa.Column("bssid", sa.String(32), nullable=False),
        sa.Column("rssi", sa.String(16), nullable=False),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("registrar_id", "enrollee_id", name="pk_living_enrollees"),
    )
    op.create_index("ix_living_enrollees_org_id", "living_enrollees", ["org_id"])
    op.create_table(
        "living_permits",
        sa.Column("gateway_id", sa.String(32), sa.ForeignKey(
            "devices.asset_id", name="fk_living_permits_gateway_id_devices", ondelete="CASCADE"), nullable=False),
        sa.Column("product_key", sa.String(32), nullable=True),
        sa.Column("time", sa.Integer, nullable=False),
        sa.Column("open_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", name="pk_living_permits"),
    )


def downgrade() -> None:
    for name in ("living_permits", "living_enrollees", "living_bind_tokens", "living_products", "living_bindings",
                 "living_homes", "living_sessions", "living_auth_codes", "living_users"):
        op.drop_table(name)
