"""Call-back queue latency at scale, served by gunicorn as in the Procfile, on loopback: a manager's
queue page (`/callbacks`) and an outcome click (`POST /callbacks/<id>/outcome` as htmx sends it),
against the target "under 50 ms at p95 with 1,000,000 customers and 200 due call-backs".

It seeds 200 open call-backs due today for a benchmark manager (lapsed customers with a phone, most
value at risk first), then measures with one user, one request at a time (gunicorn's sync workers
close the connection after each answer): the queue page with the default daily cap (40 rows shown,
160 roll over) and with the cap raised to 200 (all rows rendered); then outcome clicks (no answer,
responded, no answer, wrong number, in turn), each on a different call-back; then the calls-per-day
history the page loads into itself once shown (with today's calls in it). Every answer is checked
(status, rows shown, the row logged). Untimed warm-up requests go first (`--warmup`), so no worker's
first request (template compiling, ~150 ms) is counted. With `--clients N` (default 4; 0 skips it) it
reseeds and repeats both with N clients at once (threads). p50/p95/p99 are nearest-rank. Usage, on a
database seeded by `flask demo seed --customers 1000000`:

    python bench/callbacks.py --database-url sqlite:////tmp/bench-1m.sqlite3
    python bench/callbacks.py --database-url postgresql://crm@127.0.0.1:5433/bench

It adds what it needs (a benchmark manager), runs ANALYZE on the call-backs, and can be run again:
before each seeding and at the end it takes back every outcome the benchmark logged (through
`callbacks.take_back`, so statuses, flagged phones and timeline entries are put back), deletes the
manager's call-backs and restores the daily cap as it was (`--keep` leaves the last seeding in place).
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import pages  # after the path: bench/ is not a package on its own

BENCH_EMAIL = "bench-manager@example.com"
BENCH_PASSWORD = "bench-manager-password"
DUE = 200  # call-backs due today for the manager
CLICKS = ("no_answer", "responded", "no_answer", "wrong_number")  # the outcomes clicked, in turn
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')  # what <body hx-headers> carries, as tests/conftest.py reads it
ROW = re.compile(r'<li class="call-row')


# --- the database side (in this process, through the app's own functions) ---------------------------

def open_app(database_url: str):
    os.environ.update(APP_ENV="development", DATABASE_URL=database_url, SECRET_KEY="bench")
    from crm import create_app

    return create_app({"REDIS_URL": None})


def ensure_manager(app) -> int:
    from sqlalchemy import select

    from crm import accounts
    from crm.extensions import db
    from crm.models import Role, User

    with app.app_context():
        manager_id = db.session.scalar(select(User.id).where(User.email == BENCH_EMAIL))
        if manager_id is None:
            manager_id = accounts.create_user(BENCH_EMAIL, "Bench Manager", BENCH_PASSWORD, Role.MANAGER).id
            db.session.commit()
        return manager_id


def reset(app, manager_id: int) -> int:
    """Take back every outcome the benchmark logged (latest first), then delete the manager's call-backs
    and the timeline entries it wrote. Return how many outcomes were taken back."""
    from sqlalchemy import delete, select

    from crm import callbacks, figures
    from crm.errors import FieldError
    from crm.extensions import db
    from crm.models import CallBack, Interaction, User

    with app.app_context():
        manager = db.session.get(User, manager_id)
        logged = db.session.scalars(select(CallBack).where(
            CallBack.manager_id == manager_id, CallBack.handled_by_id == manager_id, CallBack.done_at.is_not(None))
            .order_by(CallBack.done_at.desc(), CallBack.id.desc())).all()
        undone = 0
        for callback in logged:
            if not callback.undo:
                continue
            try:  # "now" = the moment it was logged, so the undo window is still open
                callbacks.take_back(callback.id, manager, now=figures.aware(callback.done_at))
                db.session.flush()
                undone += 1
            except FieldError as error:
                print(f"warning: call-back {callback.id} not taken back: {error.message}", file=sys.stderr)
        called = select(CallBack.customer_id).where(CallBack.manager_id == manager_id)  # by customer: indexed
        db.session.execute(delete(Interaction).where(Interaction.customer_id.in_(called),
                                                     Interaction.user_id == manager_id))
        db.session.execute(delete(CallBack).where(CallBack.manager_id == manager_id))
        db.session.commit()
        return undone


def seed(app, manager_id: int, count: int = DUE) -> list[int]:
    """Fresh call-backs due today for the manager: lapsed, callable customers with a working phone and
    no open call-back, most value at risk first. Return their ids in queue order."""
    from datetime import timedelta

    from sqlalchemy import exists, insert, select, text

    from crm import callbacks, clock, workdays
    from crm.extensions import db
    from crm.models import CallBack, CallReason, Contact, ContactKind, Customer, Lapse, Status, User
    from crm.settings import CallRules

    reset(app, manager_id)
    with app.app_context():
        manager = db.session.get(User, manager_id)
        phone = exists().where(Contact.customer_id == Customer.id, Contact.kind == ContactKind.PHONE,
                               Contact.invalid.is_(False))
        waiting = exists().where(CallBack.customer_id == Customer.id, CallBack.done_at.is_(None))
        chosen = db.session.scalars(select(Customer).where(
            Customer.lapse == Lapse.LAPSED, Customer.status != Status.INACTIVE, Customer.do_not_contact.is_(False),
            phone, ~waiting).order_by(Customer.at_risk.desc(), Customer.id).limit(count)).all()
        assert len(chosen) == count, f"only {len(chosen)} callable lapsed customers"
        today = clock.team_today()
        if workdays.is_working_day(today):  # as the lapsed queue's "add to call-backs" does
            added = callbacks.assign(chosen, manager_id, today, manager)
        else:  # a day off: make them overdue from an hour ago, which today's queue shows all the same
            due = clock.now() - timedelta(hours=1)
            added = len(db.session.execute(insert(CallBack).returning(CallBack.id), [
                {"customer_id": c.id, "manager_id": manager_id, "due_at": due, "reason": CallReason.LAPSED,
                 "attempts": 0, "created_by_id": manager_id, "created_at": clock.now()} for c in chosen]).all())
        assert added == count, f"{added} of {count} call-backs added"
        db.session.commit()
        db.session.execute(text("ANALYZE callbacks"))  # the only table that changed; the rest keep their stats
        db.session.commit()
        queued = callbacks.queue(manager, rules=CallRules(daily_cap=count))
        assert len(queued.rows) == count and not queued.progress.done, (len(queued.rows), queued.progress.done)
        return [row.callback.id for row in queued.rows]


def daily_cap(app, cap: int | None = None):
    """Set the daily cap (None: only read); return the call rules' stored row value before (None if unset)."""
    from dataclasses import replace

    from crm import settings
    from crm.extensions import db
    from crm.models import TeamSetting
    from crm.settings import KEYS, CallRules

    with app.app_context():
        row = db.session.get(TeamSetting, KEYS[CallRules])
        before = dict(row.value) if row and row.value is not None else None
        if cap is not None:
            settings.save(replace(settings.load(CallRules), daily_cap=cap))
            db.session.commit()
        return before


def restore_rules(app, before: dict | None) -> None:
    from crm.extensions import db
    from crm.models import TeamSetting
    from crm.settings import KEYS, CallRules

    with app.app_context():
        row = db.session.get(TeamSetting, KEYS[CallRules])
        if before is None:
            if row is not None:
                db.session.delete(row)
        else:
            row = row or TeamSetting(key=KEYS[CallRules])
            row.value = before
            db.session.add(row)
        db.session.commit()


# --- the HTTP side ---------------------------------------------------------------------------------

def sign_in(port: int) -> str:
    """bench.pages.sign_in, as the benchmark manager instead of the benchmark owner."""
    with mock.patch.multiple(pages, BENCH_EMAIL=BENCH_EMAIL, BENCH_PASSWORD=BENCH_PASSWORD):
        return pages.sign_in(port)


def csrf_token(port: int, cookie: str) -> tuple[str, str]:
    """Open the queue page once, as the browser does before any click: the CSRF token it carries, and
    the session cookie that now holds it (signing in starts a new session without one)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/callbacks", headers={"Cookie": cookie})
    response = conn.getresponse()
    html = response.read().decode()
    assert response.status == 200, response.status
    if response.getheader("Set-Cookie"):
        cookie = response.getheader("Set-Cookie").split(";", 1)[0]
    return cookie, CSRF.search(html).group(1)


def get(conn: http.client.HTTPConnection, cookie: str, path: str, hx: bool = False) -> tuple[int, str]:
    conn.request("GET", path, headers={"Cookie": cookie, **({"HX-Request": "true"} if hx else {})})
    response = conn.getresponse()
    return response.status, response.read().decode()


def click(conn: http.client.HTTPConnection, cookie: str, token: str, callback_id: int, outcome: str) -> tuple[int, str]:
    """One outcome button pressed on a queue row, as htmx posts it (the row partial comes back)."""
    body = urlencode({"outcome": outcome, "csrf_token": token})
    conn.request("POST", f"/callbacks/{callback_id}/outcome", body, {
        "Cookie": cookie, "HX-Request": "true", "X-CSRFToken": token,
        "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    return response.status, response.read().decode()


def timed(request, *args) -> tuple[float, int | None, str]:
    """Run get() or click(): (ms, status or None on a broken connection, body or the error)."""
    started = time.perf_counter()
    try:
        status, html = request(*args)
    except (OSError, http.client.HTTPException) as error:
        return (time.perf_counter() - started) * 1000, None, repr(error)
    return (time.perf_counter() - started) * 1000, status, html


def percentile(ordered: list[float], share: float) -> float:
    """Nearest rank: the smallest sample at or above `share` of them."""
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def summary(name: str, timings: list[float], errors: int, size: int) -> dict:
    ordered = sorted(timings)
    return {"name": name, "n": len(ordered), "p50": statistics.median(ordered), "p95": percentile(ordered, 0.95),
            "p99": percentile(ordered, 0.99), "max": ordered[-1], "errors": errors, "kb": size / 1024}


def queue_page(port: int, cookie: str, rounds: int, rows: int, rolled: int) -> tuple[list[float], int, int]:
    """The manager's queue page, `rounds` times in a row: (timings, errors, bytes of the last answer).
    An answer other than 200 with `rows` rows and `rolled` rolling over counts as an error."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    timings, errors, size = [], 0, 0
    for _ in range(rounds):
        ms, status, html = timed(get, conn, cookie, "/callbacks")
        timings.append(ms)
        size = len(html.encode())
        if status != 200 or len(ROW.findall(html)) != rows or (rolled and f"{rolled} more roll over" not in html):
            errors += 1
            conn = http.client.HTTPConnection("127.0.0.1", port)
    return timings, errors, size


def history_part(port: int, cookie: str, rounds: int) -> tuple[list[float], int, int]:
    """The calls-per-day history the queue page loads into itself (hx-trigger="load"), `rounds` times."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    timings, errors, size = [], 0, 0
    for _ in range(rounds):
        ms, status, html = timed(get, conn, cookie, "/callbacks/history", True)
        timings.append(ms)
        size = len(html.encode())
        if status != 200 or "<svg" not in html:
            errors += 1
            conn = http.client.HTTPConnection("127.0.0.1", port)
    return timings, errors, size


def clicks(port: int, cookie: str, token: str, ids: list[int]) -> list[tuple[str, float, bool, int]]:
    """Log an outcome on each call-back in turn: (outcome, ms, ok, bytes) per click; ok is a 200 with
    the row, now logged, in it."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    results = []
    for i, callback_id in enumerate(ids):
        outcome = CLICKS[i % len(CLICKS)]
        ms, status, html = timed(click, conn, cookie, token, callback_id, outcome)
        ok = status == 200 and f'id="call-{callback_id}"' in html and "data-done" in html
        results.append((outcome, ms, ok, len(html.encode())))
        if status is None:
            conn = http.client.HTTPConnection("127.0.0.1", port)
    return results


def click_rows(results: list[tuple[str, float, bool, int]]) -> list[dict]:
    """All clicks, then each outcome on its own."""
    rows = [summary("outcome click, all", [r[1] for r in results], sum(not r[2] for r in results), results[-1][3])]
    for outcome in dict.fromkeys(CLICKS):
        mine = [r for r in results if r[0] == outcome]
        rows.append(summary(f"  {outcome}", [r[1] for r in mine], sum(not r[2] for r in mine), mine[-1][3]))
    return rows


def together(clients: int, work) -> list:
    """Run work(i) on `clients` threads at once (after a common start); return their results."""
    results: list = [None] * clients
    start = threading.Barrier(clients)

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def print_table(rows: list[dict]) -> None:
    print(f"{'request':44} {'n':>5} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'errors':>6} {'KB':>6}")
    for row in rows:
        print(f"{row['name']:44} {row['n']:5d} {row['p50']:7.1f} {row['p95']:7.1f} {row['p99']:7.1f} "
              f"{row['max']:7.1f} {row['errors']:6d} {row['kb']:6.1f}", flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", help="default: start the embedded Redis")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=4, help="WEB_CONCURRENCY for gunicorn")
    parser.add_argument("--rounds", type=int, default=200, help="queue page requests per cap (per client)")
    parser.add_argument("--clicks", type=int, default=150, help=f"outcome clicks, each on its own call-back "
                                                                f"(at most {DUE} less the warm-up ones)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed page requests before each timed set "
                        "(and up to 8 untimed clicks on spare call-backs), so every worker has compiled its templates")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for the second run; 0 skips it")
    parser.add_argument("--keep", action="store_true", help="leave the last seeded call-backs in place")
    args = parser.parse_args()
    if not 1 <= args.clicks <= DUE:
        parser.error(f"--clicks must be from 1 to {DUE}")
    warm_clicks = min(8, args.warmup, DUE - args.clicks)

    app = open_app(args.database_url)
    from crm.settings import CallRules

    cap = CallRules().daily_cap  # the default (40)
    manager_id = ensure_manager(app)
    rules_before = daily_cap(app)
    redis_url = args.redis_url
    if not redis_url:
        from crm.embedded_redis import ensure_started

        redis_url = ensure_started(tempfile.mkdtemp(prefix="bench-redis-"), port=6391)
    server = pages.start_server(args.database_url, redis_url, args.port, args.workers)
    try:
        cookie, token = csrf_token(args.port, sign_in(args.port))
        print(f"database: {args.database_url}  gunicorn workers: {args.workers}  {DUE} call-backs due  "
              f"warm-up: {args.warmup} pages, {warm_clicks} clicks  load average before: {load_average()}")

        def page_set(limit: int, rounds: int, clients: int = 1) -> tuple[list[float], int, int]:
            daily_cap(app, limit)
            shown, rolled = min(limit, DUE), max(DUE - limit, 0)
            queue_page(args.port, cookie, args.warmup, shown, rolled)
            runs = together(clients, lambda _: queue_page(args.port, cookie, rounds, shown, rolled))
            restore_rules(app, rules_before)
            return [t for run in runs for t in run[0]], sum(run[1] for run in runs), runs[0][2]

        def click_set(ids: list[int], clients: int = 1) -> list[dict]:
            clicks(args.port, cookie, token, ids[DUE - warm_clicks:])  # the spares: the bottom of the queue
            share = [ids[:args.clicks][i::clients] for i in range(clients)]  # no two clients on one call-back
            return click_rows([r for run in together(clients, lambda i: clicks(args.port, cookie, token, share[i]))
                               for r in run])

        # One user, one request at a time (gunicorn's sync workers close the connection after each answer).
        ids = seed(app, manager_id)
        rows = [summary(f"queue page, cap {cap} ({cap} rows, {DUE - cap} roll over)", *page_set(cap, args.rounds)),
                summary(f"queue page, cap {DUE} ({DUE} rows)", *page_set(DUE, args.rounds))]
        rows += click_set(ids)
        history_part(args.port, cookie, args.warmup)
        rows.append(summary(f"history part, {warm_clicks + args.clicks} calls today",
                            *history_part(args.port, cookie, args.rounds)))
        print("\n1 user, sequential (ms)")
        print_table(rows)

        if args.clients:
            ids = seed(app, manager_id)
            rows = [summary(f"queue page, cap {cap}", *page_set(cap, args.rounds, args.clients))]
            rows += click_set(ids, args.clients)
            print(f"\n{args.clients} clients at once, each on its own connection (ms)")
            print_table(rows)
        print(f"\nload average after: {load_average()}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
        restore_rules(app, rules_before)
        if not args.keep:
            reset(app, manager_id)


if __name__ == "__main__":
    main()
