"""The dashboard's summaries at scale: how long the nightly rebuild's dashboard step takes, per
summary, and how many rows the panels then read. Page latency is measured by `bench/pages.py
--pages dashboard` (gunicorn as in the Procfile, one user and sixteen clients).

    python bench/dashboard.py --database-url sqlite:////tmp/bench-1m.sqlite3 --runs 3
    python bench/dashboard.py --database-url postgresql://crm@127.0.0.1:5433/bench --runs 3

It migrates the database first (the summaries' tables come with migration 0008).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(APP_ENV="development", DATABASE_URL=args.database_url, SECRET_KEY="bench")

    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from crm import clock, create_app, summaries
    from crm.extensions import db
    from crm.models import BaseDay, CohortMonth, Customer, Order, SalesDay, SegmentSalesDay

    app = create_app()
    with app.app_context():
        upgrade()
        customers, orders = db.session.scalar(select(func.count(Customer.id))), db.session.scalar(
            select(func.count(Order.id)))
        print(f"database: {args.database_url}  customers {customers:,}  orders {orders:,}", flush=True)
        totals, steps = [], {}
        for run in range(args.runs):
            report = summaries.build(clock.team_today())
            db.session.commit()
            totals.append(report.seconds)
            for name, seconds in report.steps.items():
                steps.setdefault(name, []).append(seconds)
            print(f"run {run + 1}: {report.seconds:.1f}s {report.steps}", flush=True)
        print(f"summaries built, median of {args.runs}: {statistics.median(totals):.1f}s; per step: "
              + ", ".join(f"{name} {statistics.median(values):.1f}s" for name, values in steps.items()))
        for model in (SalesDay, SegmentSalesDay, BaseDay, CohortMonth):
            print(f"  {model.__tablename__}: {db.session.scalar(select(func.count()).select_from(model)):,} rows")


if __name__ == "__main__":
    main()
