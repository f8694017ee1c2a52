"""RQ jobs: module-level functions that take plain values, call the domain, and commit.

They run inside the app context that `worker.py` sets up for each job.
"""

from __future__ import annotations

from flask import current_app

from crm import imports
from crm.extensions import db


def database_ping() -> str:
    """Run one query and return the database dialect: proves a worker reaches the database."""
    db.session.execute(db.text("SELECT 1"))
    return db.engine.dialect.name


def run_import(run_id: int) -> str:
    """Run a confirmed CSV import; run again, it continues after the rows already processed."""
    run = imports.execute(run_id, imports.Settings.from_config(current_app.config))
    db.session.commit()
    return run.state.value if run else "missing"
