"""cluster: the node that wrote each event, the nodes and their cursors, who holds a device online

Revision ID: cluster_0003
Revises: 0002_oceanconnect
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cluster_0003"
down_revision = "0002_oceanconnect"
branch_labels = ("cluster",)
depends_on = None

#: PostgreSQL: every statement that adds events wakes the nodes listening (a notice is sent at commit,
#: so a rolled-back write wakes nobody), whoever wrote them: a node or a ``thingport`` command.
_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION thingport_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('thingport_events', '');
  RETURN NULL;
END $$
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER thingport_events_notify AFTER INSERT ON events
FOR EACH STATEMENT EXECUTE FUNCTION thingport_events_notify()
"""


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("node_id", sa.String(64), nullable=True))
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("online_node", sa.String(64), nullable=True))
    op.create_table(
        "cluster_nodes",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_time", sa.BigInteger, nullable=False),
        sa.Column("event_cursor", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("node_id", name="pk_cluster_nodes"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_NOTIFY_FUNCTION)
        op.execute(_NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS thingport_events_notify ON events")
        op.execute("DROP FUNCTION IF EXISTS thingport_events_notify()")
    op.drop_table("cluster_nodes")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("online_node")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("node_id")
