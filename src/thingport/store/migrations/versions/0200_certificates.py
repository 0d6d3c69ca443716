"""device certificates: each organization's device CAs and the certificates they issued

Revision ID: certificates_0200
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "certificates_0200"
down_revision = "0001"
branch_labels = ("certificates",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_cas",
        sa.Column("ca_id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("authority", sa.String(8), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_enc", sa.Text(), nullable=False),
        sa.Column("not_after", sa.BigInteger(), nullable=False),
        sa.Column("imported", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("retire_time", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.org_id"], name="fk_device_cas_org_id_organizations"),
        sa.PrimaryKeyConstraint("ca_id", name="pk_device_cas"),
    )
    op.create_index("ix_device_cas_org_id_authority", "device_cas", ["org_id", "authority"])
    op.create_table(
        "device_certificates",
        sa.Column("cert_sn", sa.String(24), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("asset_id", sa.String(32), nullable=False),
        sa.Column("ca_id", sa.String(40), nullable=False),
        sa.Column("authority", sa.String(8), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("valid_day", sa.Integer(), nullable=False),
        sa.Column("issue_time", sa.BigInteger(), nullable=False),
        sa.Column("not_before", sa.BigInteger(), nullable=False),
        sa.Column("expire_time", sa.BigInteger(), nullable=False),
        sa.Column("issue_by", sa.String(64), nullable=True),
        sa.Column("revoke_time", sa.BigInteger(), nullable=True),
        sa.Column("revoke_reason", sa.Integer(), nullable=True),
        sa.Column("revoke_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["ca_id"], ["device_cas.ca_id"], name="fk_device_certificates_ca_id_device_cas"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.org_id"],
                                name="fk_device_certificates_org_id_organizations"),
        sa.PrimaryKeyConstraint("cert_sn", name="pk_device_certificates"),
        sa.UniqueConstraint("fingerprint", name="uq_device_certificates_fingerprint"),
    )
    op.create_index("ix_device_certificates_asset_id", "device_certificates", ["asset_id"])


def downgrade() -> None:
    op.drop_index("ix_device_certificates_asset_id", table_name="device_certificates")
    op.drop_table("device_certificates")
    op.drop_index("ix_device_cas_org_id_authority", table_name="device_cas")
    op.drop_table("device_cas")
