"""A team's day under load, on loopback: gunicorn as in the Procfile, the real RQ worker, locust users.

While managers work their call-back queues and look customers up, an owner watches the dashboard and
the tills post orders to the API (`--api-rate` a second), the worker (`python worker.py`, its clock
and scheduler on) sends one sequence step to `--messages` customers over SMS through Apprise to an
HTTP sink in a process of its own. The scenario is bench/team_day.py (locust, headless); this script
prepares the base, starts everything, runs it for `--minutes` (longer if the worker has not finished),
checks the worker's outcome and prints p50/p95/p99 and errors per request:

    pip install -r bench/requirements.txt    # locust
    python bench/load.py --database-url postgresql://crm@127.0.0.1:5433/bench

on a base seeded by `flask demo seed --customers 1000000` (bench/load_postgres.py copies one).
It adds what it needs and can be run again: `--managers` benchmark managers, each with 200 call-backs
due today (bench/callbacks.py seeds them, and takes back the outcomes of the previous run first; the
queue shows the daily cap's worth, 40 by default: a manager who gets through them sees "all done"),
the benchmark owner of bench/pages.py, one API token per till, an SMS contact and consent for
customers lacking one (bench/sequences.py), and a 1-step "[bench] load" sequence with `--messages`
customers enrolled (the previous run's is deleted first). The orders the tills post stay, as a real
day's would. The night's rebuild is marked as done for today in the run's own Redis, so the worker's
clock does not start it in the middle of the day.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import callbacks as callback_bench  # after the path: bench/ is not a package on its own
from bench import pages, sequences

MANAGER_EMAIL = "load-manager-{}@example.com"
MANAGER_PASSWORD = "load-manager-password"
TILL_PREFIX = "[load] till"
CALLBACKS_EACH = 200


def managers(app, count: int) -> list[int]:
    """The benchmark managers, each with CALLBACKS_EACH call-backs due today (fresh every run)."""
    from sqlalchemy import select

    from crm import accounts
    from crm.extensions import db
    from crm.models import Role, User

    ids = []
    with app.app_context():
        for n in range(1, count + 1):
            email = MANAGER_EMAIL.format(n)
            user_id = db.session.scalar(select(User.id).where(User.email == email))
            if user_id is None:
                user_id = accounts.create_user(email, f"Load Manager {n}", MANAGER_PASSWORD, Role.MANAGER).id
                db.session.commit()
            ids.append(user_id)
    for user_id in ids:
        callback_bench.seed(app, user_id, CALLBACKS_EACH)
    return ids


def tills(app, count: int) -> list[str]:
    """One API token per till; the previous run's are deleted (their plain tokens are gone anyway)."""
    from sqlalchemy import delete

    from crm import api_tokens
    from crm.extensions import db
    from crm.models import ApiToken

    with app.app_context():
        db.session.execute(delete(ApiToken).where(ApiToken.name.startswith(TILL_PREFIX)))
        plain = [api_tokens.create_token(f"{TILL_PREFIX} {n}", None)[1] for n in range(1, count + 1)]
        db.session.commit()
    return plain


def known_emails(app, count: int) -> list[str]:
    """Addresses of existing customers, spread over the base: who the tills sell to most of the time."""
    from sqlalchemy import select

    from crm.extensions import db
    from crm.models import Contact, ContactKind

    with app.app_context():
        return list(db.session.scalars(select(Contact.value).where(
            Contact.kind == ContactKind.EMAIL, Contact.invalid.is_(False), Contact.customer_id % 211 == 0)
            .limit(count)))


def last_night(app) -> None:
    """Run the night's rebuild when the base has none recorded (a copied base): a day starts after one,
    and without its stored RFM cut points every order would compute them over the whole base."""
    from crm import clock, segments, summaries
    from crm.extensions import db

    with app.app_context():
        if segments.last_rebuild():
            return
        started = time.perf_counter()
        segments.rebuild()
        db.session.commit()
        summaries.build(clock.team_today())
        db.session.commit()
        print(f"no rebuild recorded: ran last night's (untimed) in {time.perf_counter() - started:.0f}s", flush=True)


def enrol_sequence(app, count: int) -> int:
    """A fresh 1-step SMS sequence with `count` customers enrolled, due now."""
    from crm import enrolment
    from crm.extensions import db
    from crm.models import Sequence

    sequences.reset(app)
    with app.app_context():
        sequence = db.session.get(Sequence, sequences.make_sequence("load", ["sms"]))
        report = enrolment.enrol(sequence, sequences.candidates(count, "sms"), "segment", None)
        db.session.commit()
        assert report.enrolled == count, f"only {report.enrolled} of {count} enrolled: {report.skipped}"
        return sequence.id


def sent_so_far(app, sequence_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from crm.extensions import db
    from crm.models import Message

    with app.app_context():
        rows = db.session.execute(select(Message.state, func.count()).where(Message.sequence_id == sequence_id)
                                  .group_by(Message.state)).all()
        db.session.remove()
    return {state.value: n for state, n in rows}


def start_worker(database_url: str, redis_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": "bench-secret", "DATABASE_URL": database_url,
           "REDIS_URL": redis_url}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=out, stderr=out,
                                start_new_session=True)


def read_stats(prefix: str) -> list[dict]:
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=4, help="WEB_CONCURRENCY for gunicorn")
    parser.add_argument("--managers", type=int, default=8)
    # Each till waits for its answer before the next order: enough of them that a slow answer does not
    # lower the offered rate (each posts api_rate / tills a second, under its token's own limit).
    parser.add_argument("--tills", type=int, default=15, help="API tokens, each under its own rate limit")
    parser.add_argument("--api-rate", type=float, default=50.0, help="orders a second, all tills together")
    parser.add_argument("--messages", type=int, default=30_000, help="0: the worker runs idle")
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()

    # Everyone signs in within a second from one address: above the login limit meant for one person.
    os.environ["LOGIN_RATE_LIMIT"] = "1000 per minute"
    _, words, _ = pages.prepare(args.database_url)
    app = sequences.open_app(args.database_url)
    base = sequences.prepare(app, 0)
    print(f"database: {args.database_url} ({base['customers']:,} customers)", flush=True)
    last_night(app)
    started = time.perf_counter()
    manager_ids = managers(app, args.managers)
    plan = {"managers": [(MANAGER_EMAIL.format(n), MANAGER_PASSWORD) for n in range(1, args.managers + 1)],
            "owner": (pages.BENCH_EMAIL, pages.BENCH_PASSWORD), "tokens": tills(app, args.tills),
            "api_rate": args.api_rate, "emails": known_emails(app, 5000), "words": words,
            "currency": app.config["TEAM_CURRENCY"]}
    sink = sequences.Sink("http")
    channels_before = sequences.set_channels(app, {"sms": f"json://127.0.0.1:{sink.port}/sms/{{phone}}"})
    sequence_id = enrol_sequence(app, args.messages) if args.messages else None
    print(f"prepared in {time.perf_counter() - started:.0f}s: {args.managers} managers with {CALLBACKS_EACH} "
          f"call-backs each, {args.tills} tills, {args.messages:,} customers enrolled", flush=True)

    redis_url, _, _ = sequences.start_redis()  # stopped when this process exits
    from redis import Redis

    from crm import clock

    with app.app_context():
        Redis.from_url(redis_url).set(f"segments:nightly:{clock.team_today().isoformat()}", "1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    plan_file = workdir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    server = pages.start_server(args.database_url, redis_url, args.port, args.workers)
    worker = start_worker(args.database_url, redis_url, workdir / "worker.log")
    sending = {"first": None, "done": None}
    stop = threading.Event()
    began = time.monotonic()

    def watch() -> None:
        # When the first message reached the sink, and when the step was over: every message row in a
        # final state (the dispatch pass writes all rows at once; a customer who ordered or was called
        # in the meantime has their row skipped).
        while not stop.wait(2):
            if sink.ask("count") and sending["first"] is None:
                sending["first"] = time.monotonic() - began
            states = sent_so_far(app, sequence_id) if sequence_id else {}
            if states and not states.get("queued") and not states.get("sending") and sending["done"] is None:
                sending["done"] = time.monotonic() - began

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    users = args.managers + 1 + args.tills
    prefix = str(workdir / "locust")
    try:
        run = subprocess.run(
            [str(Path(sys.executable).parent / "locust"), "-f", str(ROOT / "bench" / "team_day.py"), "--headless",
             "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{int(args.minutes * 60)}s",
             "--host", f"http://127.0.0.1:{args.port}", "--csv", prefix, "--only-summary", "--stop-timeout", "10",
             "--loglevel", "WARNING"],
            env={**os.environ, "LOAD_PLAN": str(plan_file)}, cwd=ROOT, capture_output=True, text=True)
        deadline = time.monotonic() + 600
        while sequence_id and sending["done"] is None and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(2)  # the day's load is over; let the worker finish the step
    finally:
        stop.set()
        watcher.join()  # it talks to the sink over the same pipe as the lines below
        os.killpg(server.pid, signal.SIGTERM)
        os.killpg(worker.pid, signal.SIGTERM)
        server.wait(20)
        worker.wait(20)
    states = sent_so_far(app, sequence_id) if sequence_id else {}
    received = sink.ask("count")
    sink.stop()
    sequences.restore_channels(app, channels_before)
    for manager_id in manager_ids:  # the day's outcomes taken back, so the next run starts the same
        callback_bench.reset(app, manager_id)

    (workdir / "locust.log").write_text(run.stdout + run.stderr)
    stats = read_stats(prefix)
    print(f"\nlocust exit code {run.returncode}; {users} users ({args.managers} managers, 1 owner, {args.tills} "
          f"tills at {args.api_rate:g} orders/s in all) for {args.minutes:g} min; gunicorn workers {args.workers}")
    print(f"{'request':42} {'count':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>7} {'req/s':>6} errors")
    for row in stats:
        print(f"{row['Name']:42} {int(row['Request Count']):7,} {row['50%']:>6} {row['95%']:>6} {row['99%']:>6} "
              f"{float(row['Max Response Time']):7.0f} {float(row['Requests/s']):6.1f} {row['Failure Count']}")
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        for row in list(csv.DictReader(failures.open()))[:10]:
            print("FAILURE:", row["Method"], row["Name"], row["Error"][:200], row["Occurrences"])
    sent = states.get("sent", 0)
    if sending["first"] is not None and sending["done"] is not None:
        print(f"worker: {args.messages:,} SMS due; first at the sink {sending['first']:.0f}s after the start, "
              f"the step over at {sending['done']:.0f}s ({sent / (sending['done'] - sending['first']):.0f} msg/s "
              f"while the day went on)")
    print(f"worker: message rows {states} (skipped: the customer ordered or was called meanwhile); "
          f"the sink received {received:,}")
    print(f"work directory (worker log, locust CSV): {workdir}")
    final = sum(states.get(state, 0) for state in ("sent", "skipped"))
    ok = run.returncode == 0 and final == sum(states.values()) and received == sent
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
