"""Copy a seeded SQLite base into an empty PostgreSQL database, for the PostgreSQL benchmarks.

Seeding a million customers twice costs twice; this migrates the schema with `flask db upgrade`,
then streams every table with COPY, resets the id sequences and runs ANALYZE.

    python bench/load_postgres.py sqlite:////tmp/bench-1m.sqlite3 postgresql://crm@127.0.0.1:5433/bench
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Parents before children, so foreign keys hold during the copy.
TABLES = ("users", "stages", "customers", "contacts", "consents", "search_terms", "orders", "interactions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sqlite_url")
    parser.add_argument("postgres_url")
    args = parser.parse_args()

    env = {**os.environ, "APP_ENV": "development", "SECRET_KEY": "bench", "DATABASE_URL": args.postgres_url,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True)

    source = sqlite3.connect(args.sqlite_url.removeprefix("sqlite:///"))
    started = time.perf_counter()
    with psycopg.connect(args.postgres_url, autocommit=False) as target:
        target.execute("SET session_replication_role = replica")  # no FK checks during the bulk copy
        target.execute("TRUNCATE " + ", ".join(TABLES) + " CASCADE")
        for table in TABLES:
            t = time.perf_counter()
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
            types = dict(target.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                (table,)).fetchall())
            booleans = {i for i, c in enumerate(columns) if types.get(c) == "boolean"}
            count = 0
            with target.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in source.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                    if booleans:
                        row = tuple(bool(v) if i in booleans and v is not None else v for i, v in enumerate(row))
                    copy.write_row(row)
                    count += 1
            if "id" in columns:
                target.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
            print(f"{table:14} {count:>11,} rows in {time.perf_counter() - t:6.1f}s", flush=True)
        target.commit()
        target.autocommit = True
        target.execute("ANALYZE")
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
