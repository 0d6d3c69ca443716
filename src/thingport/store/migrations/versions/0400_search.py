"""search: indexes for every field of the search language, so a selective search stays flat as the registry grows

A label condition is answered from ``(field, key, substr(value, 1, 100))``: attribute values are
unbounded and a PostgreSQL btree row is limited to about 2.7 KB, so only a prefix is indexed and the
query checks the whole value too (store/search.py ``VALUE_PREFIX``). ``deviceKey`` without a product
and ``timezone`` get an index inside the organization (with ``create_time``, the
order of a search page, so the planner prefers them over ``ix_devices_org_create``).

Revision ID: search_0400
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "search_0400"
down_revision = "0001"
branch_labels = ("search",)
depends_on = None

_VALUE = sa.text("substr(value, 1, 100)")  # the same expression as store/search.py's value_prefix


def upgrade() -> None:
    op.create_index("ix_devices_org_device_key", "devices", ["org_id", "device_key", "create_time"])
    op.create_index("ix_devices_org_timezone", "devices", ["org_id", "timezone", "create_time"])
    for table in ("device_labels", "product_labels"):
        op.create_index(f"ix_{table}_field_key_value", table, ["field", "key", _VALUE])


def downgrade() -> None:
    for table in ("device_labels", "product_labels"):
        op.drop_index(f"ix_{table}_field_key_value", table)
    op.drop_index("ix_devices_org_timezone", "devices")
    op.drop_index("ix_devices_org_device_key", "devices")
