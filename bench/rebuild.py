"""Time the nightly rebuild (totals, RFM, classes, lapse, stages) against one bare GROUP BY.

    python bench/rebuild.py --database-url URL [--runs 3] [--full]

On a seeded base (`flask demo seed --customers 1000000`). Each round times, on the same database:
  * the floor: one bare `GROUP BY customer_id` aggregate of the orders (count, sum of amounts, last
    order), computed in the database and summed there, so moving a million rows into Python is not
    counted against the floor;
  * a "cold" rebuild: the segment columns are cleared first (not timed), so every customer's
    segments, status and stage are worked out and written, as on the first night;
  * (`--no-cold` skips that, and brings the base back to today untimed instead)
  * a "quiet" rebuild straight after: nothing changed, the floor of a night's work;
  * the "next night": the rebuild as the calendar moves one day on (customers cross recency and
    lapse thresholds), what a real night costs.
`--full` also times `figures.rebuild()`, the from-scratch recompute of medians and favourites.
Prints medians and the ratio of each rebuild to the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOOR = ("SELECT SUM(n), SUM(total), MAX(last_at) FROM (SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total,"
         " MAX(placed_at) AS last_at FROM orders GROUP BY customer_id) AS per_customer")


def timed(work) -> float:
    began = time.monotonic()
    work()
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="also time the from-scratch figures rebuild")
    parser.add_argument("--floor-only", action="store_true", help="time only the floor, --runs times")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold rebuild (minutes at a million)")
    args = parser.parse_args()
    os.environ.update(DATABASE_URL=args.database_url, APP_ENV="development")

    from sqlalchemy import text

    from crm import create_app, figures, segments
    from crm.extensions import db

    app = create_app()
    from datetime import timedelta

    from crm import clock

    results: dict[str, list[float]] = {"floor": [], "cold": [], "quiet": [], "next night": [], "full": []}
    with app.app_context():
        customers = db.session.scalar(text("SELECT COUNT(*) FROM customers"))
        orders = db.session.scalar(text("SELECT COUNT(*) FROM orders"))
        print(f"{db.engine.dialect.name}: {customers:,} customers, {orders:,} orders", flush=True)
        for run in range(args.runs):
            results["floor"].append(timed(lambda: db.session.execute(text(FLOOR)).all()))
            if args.floor_only:
                print(f"run {run + 1}: floor {results['floor'][-1]:.1f} s", flush=True)
                continue
            report = None

            def rebuild(days_on: int = 0):
                nonlocal report
                report = segments.rebuild(today=clock.team_today() + timedelta(days=days_on))
                db.session.commit()

            if args.no_cold:
                rebuild()  # untimed: back to today after the previous run's "next night"
            else:
                db.session.execute(text(
                    "UPDATE customers SET r_score = NULL, f_score = NULL, m_score = NULL, rfm = NULL, behaviour = NULL,"
                    " lapse = NULL, at_risk = 0, stage_id = NULL, status = 'active'"))
                db.session.commit()
                results["cold"].append(timed(rebuild))
                print(f"run {run + 1}: floor {results['floor'][-1]:.1f} s, cold {results['cold'][-1]:.1f} s "
                      f"({report.changed:,} changed; steps {report.steps})", flush=True)
            results["quiet"].append(timed(rebuild))
            print(f"run {run + 1}: floor {results['floor'][-1]:.1f} s, quiet {results['quiet'][-1]:.1f} s "
                  f"({report.changed:,} changed; steps {report.steps})", flush=True)
            results["next night"].append(timed(lambda: rebuild(days_on=1)))
            print(f"run {run + 1}: next night {results['next night'][-1]:.1f} s ({report.changed:,} changed; "
                  f"steps {report.steps})", flush=True)
            if args.full:
                def full():
                    figures.rebuild()
                    db.session.commit()
                results["full"].append(timed(full))
                print(f"run {run + 1}: figures from scratch {results['full'][-1]:.1f} s", flush=True)
        floor = statistics.median(results["floor"])
        for name in results:
            if results[name]:
                median = statistics.median(results[name])
                print(f"{name:10} median {median:6.1f} s  ratio to floor {median / floor:4.2f}x", flush=True)


if __name__ == "__main__":
    main()
