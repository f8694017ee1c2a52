"""Build a benchmark database: migrate an empty database, then seed demo customers (~10 orders each).

    .venv/bin/python bench/seed.py sqlite:////tmp/bench-1m.sqlite3 --customers 1000000
    .venv/bin/python bench/seed.py postgresql://crm@127.0.0.1:5432/bench --customers 1000000

The same as `flask --app app db upgrade && flask --app app demo seed --customers N`, with the time of
each step printed; it refuses a database that has users already, so a benchmark knows its base.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="DATABASE_URL of an empty (or not yet existing SQLite) database")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--locale", choices=("en", "ru"), default="en")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="generating processes (default: by cores)")
    args = parser.parse_args(argv)

    os.environ["DATABASE_URL"] = args.url
    os.environ.setdefault("APP_ENV", "development")
    os.environ.setdefault("SECRET_KEY", "bench")  # keeps the dev profile from writing one under instance/

    from flask_migrate import upgrade

    from crm import create_app, demo

    app = create_app()
    with app.app_context():
        started = time.monotonic()
        upgrade()
        print(f"migrated in {time.monotonic() - started:.1f}s")
        if demo.has_users():
            print("the database has users already; give an empty one", file=sys.stderr)
            return 1
        report = demo.seed(args.customers, args.locale, args.seed, workers=args.workers, progress=_progress)
    print(f"{report.customers:,} customers, {report.orders:,} orders in {report.seconds:.1f}s "
          f"(writing {report.writing:.1f}s, figures {report.figures:.1f}s)")
    return 0


def _progress(done: int) -> None:
    if done % 100_000 == 0:
        print(f"  {done:,} customers", flush=True)


if __name__ == "__main__":
    sys.exit(main())
