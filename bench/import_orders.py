"""Time the orders import: N order rows for M customers, through the code the worker's job runs.

    python bench/import_orders.py --rows 1000000 [--customers 50000] [--database-url URL | --postgres]

The customers are bulk-inserted first (not timed); a share of the rows names customers who are
not in the base yet, so the import also creates customers. `--again` times a second run of the
same file, which must change nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRODUCTS = [("Хлеб", "Выпечка"), ("Круассан", "Выпечка"), ("Вино красное", "Вино"), ("Вино белое", "Вино"),
            ("Сыр", "Молочное"), ("Кофе", "Напитки"), ("Рубашка", "Одежда"), ("Стрижка", "Услуги")]
STATUSES = ["paid"] * 18 + ["cancelled", "refunded"]


def generate(rows: int, customers: int, new_share: float, seed: int = 1) -> bytes:
    """Return a cp1251-free, `;`-separated export as a Russian shop would write it."""
    rnd = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    span = 3 * 365 * 86400
    lines = ["Номер заказа;Дата;Сумма;Валюта;Статус;ID клиента;Почта;Клиент;Товар;Категория;Количество"]
    newcomers = max(1, customers // 10)
    for i in range(rows):
        if rnd.random() < new_share:
            n = rnd.randrange(newcomers)
            ref, email, name = f"N{n}", f"new{n}@example.org", f"Новый клиент {n}"
        else:
            n = rnd.randrange(customers)
            ref, email, name = f"C{n}", f"c{n}@example.com", f"Клиент {n}"
        product, category = rnd.choice(PRODUCTS)
        placed = (start + timedelta(seconds=rnd.randrange(span))).strftime("%d.%m.%Y %H:%M")
        amount = f"{rnd.randrange(100, 500000) / 100:.2f}".replace(".", ",")
        lines.append(f"A{i};{placed};{amount};RUB;{rnd.choice(STATUSES)};{ref};{email};{name};{product};"
                     f"{category};{rnd.randrange(1, 4)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def seed_customers(count: int) -> None:
    """Bulk-insert customers C0.. with an email each, as a previous import would have left them."""
    from sqlalchemy import insert

    from crm.extensions import db
    from crm.models import Contact, ContactKind, Customer

    now = datetime.now(UTC)
    step = 10000
    # The database is the bench's own, so ids can be given (n + 1) instead of read back one by one.
    for first in range(0, count, step):
        numbers = range(first, min(first + step, count))
        db.session.execute(insert(Customer.__table__), [
            {"id": n + 1, "name": f"Клиент {n}", "sort_name": f"клиент {n}", "external_ref": f"C{n}",
             "source": "bench", "tags": [], "favourite_products": [], "favourite_categories": [], "created_at": now,
             "updated_at": now} for n in numbers])
        db.session.execute(insert(Contact.__table__), [
            {"customer_id": n + 1, "kind": ContactKind.EMAIL, "value": f"c{n}@example.com"} for n in numbers])
    if db.engine.dialect.name == "postgresql":
        db.session.execute(db.text("SELECT setval('customers_id_seq', :n)"), {"n": max(count, 1)})
    db.session.commit()


def _machine() -> str:
    # Shared and virtual machines change speed from hour to hour; this puts a run's figures in context.
    started = time.process_time()
    sum(range(10**7))
    return f"reference loop {time.process_time() - started:.2f}s CPU, {os.cpu_count()} cores"


def run_import(content: bytes, source: str, batch: int | None):
    from flask import current_app

    from crm import imports
    from crm.extensions import db
    from crm.models import ImportKind

    started, cpu = time.perf_counter(), time.process_time()
    run = imports.start(ImportKind.ORDERS, "bench.csv", content, None)
    imports.confirm(run, imports.remap(run, {}), source)
    db.session.commit()
    run = imports.execute(run.id, imports.Settings.from_config(current_app.config), batch)
    return run, time.perf_counter() - started, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--new-share", type=float, default=0.05, help="Share of rows naming unknown customers.")
    parser.add_argument("--database-url", help="An empty database (default: a fresh SQLite file).")
    parser.add_argument("--postgres", action="store_true", help="Start a throwaway PostgreSQL cluster.")
    parser.add_argument("--again", action="store_true", help="Time a second run of the same file too.")
    parser.add_argument("--batch", type=int, help="Rows per transaction (default: the import's own).")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-")))
        os.environ.setdefault("APP_ENV", "development")
        os.environ["INSTANCE_PATH"] = str(workdir)
        url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
        if args.postgres:
            from tests import servers

            admin = stack.enter_context(servers.postgres_server())
            url = servers.create_database(admin, "crm_bench").replace("postgresql://", "postgresql+psycopg://")

        from crm import create_app, figures
        from crm.extensions import db
        from crm.models import Customer, Order

        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_DIR": str(workdir), "REDIS_URL": None,
                          "TEAM_CURRENCY": "RUB", "TEAM_COUNTRY": "RU"})
        with app.app_context():
            db.create_all()
            clock = time.perf_counter()
            seed_customers(args.customers)
            content = generate(args.rows, args.customers, args.new_share)
            print(f"setup: {args.customers} customers, {args.rows} rows, {len(content) / 2**20:.1f} MB "
                  f"in {time.perf_counter() - clock:.1f}s on {db.engine.dialect.name}; {_machine()}")
            for label in ("first", "again") if args.again else ("first",):
                run, seconds, cpu = run_import(content, "bench", args.batch)
                print(f"{label}: {run.state.value} in {seconds:.1f}s = {args.rows / seconds:,.0f} rows/s "
                      f"(CPU {cpu:.1f}s, load average {os.getloadavg()[0]:.1f}); created {run.created}, "
                      f"updated {run.updated}, unchanged {run.unchanged}, errors {run.error_count}")
            clock = time.perf_counter()
            figures.rebuild()
            db.session.commit()
            print(f"of which the figures rebuild alone: {time.perf_counter() - clock:.1f}s")
            orders = db.session.scalar(db.select(db.func.count()).select_from(Order))
            buyers = db.session.scalar(db.select(db.func.count()).select_from(Customer).where(Customer.order_count > 0))
            print(f"database: {orders} orders, {buyers} customers with paid orders")
            db.engine.dispose()


if __name__ == "__main__":
    main()
