"""RQ jobs: module-level functions that take plain values, call the domain, and commit.

They run inside the app context that `worker.py` sets up for each job.
"""

from __future__ import annotations

from crm.extensions import db


def database_ping() -> str:
    """Run one query and return the database dialect: proves a worker reaches the database."""
    db.session.execute(db.text("SELECT 1"))
    return db.engine.dialect.name
