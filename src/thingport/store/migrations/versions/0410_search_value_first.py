"""search: the label index leads with the value, so a name search without a locale stays flat too

``ix_*_labels_field_key_value`` (search_0400) is ``(field, key, substr(value, 1, 100))``:
``deviceName = 'x'`` without a locale names no ``key``, so only ``field`` matched the index and the
search read every name label of the database (``SEARCH device_labels USING INDEX
ix_device_labels_field_key_value (field=?)``): 22 → 31 ms p50 from 10,000 to 20,000 devices in
``./run bench registry-size``. ``(field, substr(value, 1, 100), key)`` answers both: with a key all
three columns, without one the first two. ``exists()`` and ``like`` with a key keep
``ix_*_labels_field_key``; the number and size of the label indexes stay the same.

Revision ID: search_0410
Revises: search_0400
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "search_0410"
down_revision = "search_0400"
branch_labels = None
depends_on = None

_VALUE = sa.text("substr(value, 1, 100)")  # the same expression as store/search.py's value_prefix
TABLES = ("device_labels", "product_labels")


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_field_key_value", table)
        op.create_index(f"ix_{table}_field_value_key", table, ["field", _VALUE, "key"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_field_value_key", table)
        op.create_index(f"ix_{table}_field_key_value", table, ["field", "key", _VALUE])
