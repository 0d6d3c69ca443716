"""Alembic environment: runs on the connection Thingport hands it (see store/db.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from thingport.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` on the command line: THINGPORT_ALEMBIC_URL, a sync URL
    import os

    engine = create_engine(os.environ.get("THINGPORT_ALEMBIC_URL", "sqlite:///./data/thingport.db"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
