"""The main page queries read through indexes: none scans the whole customers, orders, timeline or
search table, and the list never sorts the whole base. The real queries of real requests are
captured and explained on SQLite and on PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from crm.extensions import db
from crm.models import Behaviour
from tests.conftest import sign_in
from tests.factories import customer, order, utc

BIG_TABLES = ("customers", "orders", "interactions", "search_terms", "contacts")
PAGES = [
    "/customers",
    "/customers?status=active",
    "/customers?q=ann",
    "/customers?q=anna+iva&sort=name&dir=asc",
    "/customers?q=%2B7+916",
    "/customers?sort=ltv",
    "/customers?sort=orders&dir=asc",
    "/customers?city=Moscow",
    "/customers?tag=vip",
    "/customers?manager=none",
    # A cell of the RFM grid, a group of cells and a behaviour class, as their pages link to them.
    "/customers?rfm=333",
    "/customers?rfm_group=champions",
    "/customers?behaviour=stopped",
    "/customers?behaviour=frequent&sort=ltv",
    "/customers/count?q=ann",
    "/customers/count?rfm_group=champions",
    "/customers/count?behaviour=stopped",
    "/customers/{id}",
    "/customers/{id}/orders?before={order}",
]


def _seed(app):
    with app.app_context():
        anna = customer("Anna Ivanova", emails=["anna@example.com"], phones=["+7 916 123-45-67"], tags=["vip"],
                        city="Moscow")
        first = order(anna, utc(2026, 1, 1), "10")
        for day in range(2, 25):
            order(anna, utc(2026, 1, day), "10")
        anna.rfm, anna.behaviour = 333, Behaviour.STOPPED
        for i in range(20):
            customer(f"Person {i}", city="Kazan")
        db.session.commit()
        return anna.id, first.id


def _captured(app, client, paths):
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and any(t in statement for t in BIG_TABLES):
            statements.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        for path in paths:
            assert client.get(path, headers={"HX-Request": "true"}).status_code == 200, path
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return statements


def _check_sqlite(app, statements):
    # No ANALYZE: without statistics SQLite plans as for large tables, which is the case that matters
    # (with them it rightly scans the few rows a test holds).
    with app.app_context():
        for sql, params in statements:
            plan = [row[3] for row in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            for line in plan:
                for table in BIG_TABLES:
                    assert not re.fullmatch(rf"SCAN {table}( AS \w+)?", line), (line, sql)
            # Walking a whole index and then sorting what it found is sorting the whole base.
            walks = any(line.startswith("SCAN customers") for line in plan)
            assert not (walks and any("TEMP B-TREE FOR ORDER BY" in line for line in plan)), (plan, sql)


@pytest.fixture
def signed_in(app, owner):
    ids = _seed(app)
    client = app.test_client()
    sign_in(client, owner.email)
    return client, ids


def test_main_page_queries_use_indexes_on_sqlite(app, signed_in):
    client, (customer_id, order_id) = signed_in
    paths = [p.format(id=customer_id, order=order_id) for p in PAGES]
    statements = _captured(app, client, paths)
    assert len(statements) > len(PAGES)
    _check_sqlite(app, statements)


@pytest.mark.postgres
def test_main_page_queries_use_indexes_on_postgresql(pg_app):
    from crm.models import Role
    from tests.conftest import make_user

    owner = make_user(pg_app, "owner@example.com", Role.OWNER)
    customer_id, order_id = _seed(pg_app)
    client = pg_app.test_client()
    sign_in(client, owner.email)
    statements = _captured(pg_app, client, [p.format(id=customer_id, order=order_id) for p in PAGES])
    with pg_app.app_context():
        connection = db.session.connection()
        connection.exec_driver_sql("ANALYZE")
        # The test tables are tiny, where a sequential scan is cheapest; forbid it to learn
        # whether an index path exists at all (the big base takes it).
        connection.exec_driver_sql("SET enable_seqscan = off")
        for sql, params in statements:
            plan = "\n".join(r[0] for r in connection.exec_driver_sql("EXPLAIN " + sql, params))
            for table in BIG_TABLES:
                assert f"Seq Scan on {table}" not in plan, (plan, sql)
