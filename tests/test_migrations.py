"""`flask db upgrade` builds the whole schema on an empty SQLite and an empty PostgreSQL,
and the migrations describe exactly what the models declare."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from crm.config import database_url
from crm.extensions import db
from tests import servers
from tests.runtime import ROOT, host_env


def _upgrade(url: str, tmp_path) -> None:
    result = subprocess.run(["flask", "--app", "app", "db", "upgrade"], cwd=ROOT, capture_output=True, text=True,
                            env=host_env(APP_ENV="testing", SECRET_KEY="s", DATABASE_URL=url,
                                         INSTANCE_PATH=str(tmp_path)), timeout=120)
    assert result.returncode == 0, result.stderr


def _assert_schema_matches_models(url: str) -> None:
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            assert {"users", "customers", "orders", "interactions"} <= set(inspect(conn).get_table_names())
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
    finally:
        engine.dispose()


def test_upgrade_builds_the_schema_on_an_empty_sqlite(app, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    _upgrade(url, tmp_path)
    _assert_schema_matches_models(url)


@pytest.mark.postgres
def test_upgrade_builds_the_schema_on_an_empty_postgresql(app, postgres_admin_url, tmp_path):
    url = servers.create_database(postgres_admin_url, f"crm_{uuid.uuid4().hex[:8]}")
    _upgrade(url, tmp_path)
    _assert_schema_matches_models(url)
