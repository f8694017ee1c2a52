"""Page latency at scale, served by gunicorn as in the Procfile, on loopback. Page sets (`--pages`):
`customers` (the list with a filter, search as you type, a card with 500 orders), `segments`
(the lapsing and lapsed queues, a filtered queue, the funnel board, the RFM grid) and `dashboard`
(the page and each panel as htmx loads it, for the last 30 and 365 days).

One user: sequential requests over keep-alive, p50/p95 per page. Sixteen clients: wrk with a Lua
script (p50/p95/p99, errors). Usage, on a database seeded by `flask demo seed --customers 1000000`:

    python bench/pages.py --database-url sqlite:////tmp/bench-1m.sqlite3
    python bench/pages.py --database-url postgresql://crm@127.0.0.1:5433/bench

It adds what it needs if missing (a benchmark owner, one customer with 500 orders) and runs ANALYZE.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_EMAIL = "bench-owner@example.com"
BENCH_PASSWORD = "bench-owner-password"
LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  local headers = {["Cookie"] = "%s"}
  if string.find(paths[i], "/panels/", 1, true) then headers["HX-Request"] = "true" end
  return wrk.format("GET", paths[i], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%.3f %%.3f %%.3f %%.1f\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
"""


def prepare(database_url: str) -> tuple[int, list[str]]:
    """Ensure the bench owner and a 500-order customer exist; return it, search words and cities."""
    os.environ.update(APP_ENV="development", DATABASE_URL=database_url, SECRET_KEY="bench")
    from sqlalchemy import func, insert, select, text

    from crm import accounts, create_app, figures
    from crm.extensions import db
    from crm.models import Customer, Order, Role, User

    app = create_app({"REDIS_URL": None})
    with app.app_context():
        if db.session.scalar(select(User.id).where(User.email == BENCH_EMAIL)) is None:
            accounts.create_user(BENCH_EMAIL, "Bench Owner", BENCH_PASSWORD, Role.OWNER)
            db.session.commit()
        heavy = db.session.scalar(select(Customer.id).where(Customer.order_count >= 500).limit(1))
        if heavy is None:
            heavy = db.session.scalar(select(func.min(Customer.id)))
            start = datetime.now(UTC) - timedelta(days=1000)
            db.session.execute(insert(Order), [
                {"customer_id": heavy, "source": "bench", "external_id": f"bench-{heavy}-{i}",
                 "placed_at": start + timedelta(days=2 * i), "amount": 1000 + i, "currency": "USD",
                 "status": "paid", "items": [{"name": "Coffee beans", "category": "Coffee", "quantity": 1}]}
                for i in range(500)])
            figures.refresh(heavy)
            db.session.commit()
        names = db.session.scalars(select(Customer.name).where(Customer.id % 997 == 0).limit(40)).all()
        # The biggest city and a few small ones: a frequent and a rare filter value.
        cities = [quote(c) for c in db.session.scalars(
            select(Customer.city).where(Customer.city.is_not(None), Customer.id % 1009 == 0).limit(5)).all()]
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    words = []
    for name in names:
        word = name.split()[-1].lower()
        words += [word[:n] for n in range(2, min(len(word), 6) + 1)]  # typed letter by letter
    return heavy, words, cities


def start_server(database_url: str, redis_url: str, port: int, workers: int) -> subprocess.Popen:
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "PORT": str(port),
           "WEB_CONCURRENCY": str(workers), "SECRET_KEY": "bench-secret", "APP_ENV": "production",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = procfile["web"].replace("--access-logfile -", "")
    server = subprocess.Popen(command, shell=True, cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def sign_in(port: int) -> str:
    """Sign in through the form; return the session cookie (Secure, so sent by hand over http)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/login")
    response = conn.getresponse()
    html = response.read().decode()
    cookie = response.getheader("Set-Cookie").split(";", 1)[0]
    token = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
    body = urlencode({"email": BENCH_EMAIL, "password": BENCH_PASSWORD, "csrf_token": token})
    conn.request("POST", "/login", body, {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    assert response.status == 302, response.status
    return response.getheader("Set-Cookie").split(";", 1)[0]


def one_user(port: int, cookie: str, paths: list[str], rounds: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    timings = []
    for i in range(rounds):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie, "HX-Request": "true"}
                     if "q=" in path or "/panels/" in path else {"Cookie": cookie})
        response = conn.getresponse()
        response.read()
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, (path, response.status)
    timings.sort()
    return {"p50": statistics.median(timings), "p95": timings[int(len(timings) * 0.95) - 1]}


def sixteen_clients(port: int, cookie: str, paths: list[str], seconds: int, connections: int) -> dict:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(LUA % (", ".join(json.dumps(p) for p in paths), cookie))
    script.close()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    requests, errors, p50, p95, p99, rps = re.search(r"RESULT (.*)", out).group(1).split()
    return {"requests": int(requests), "errors": int(errors), "p50": float(p50), "p95": float(p95),
            "p99": float(p99), "rps": float(rps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", help="default: start the embedded Redis")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=4, help="WEB_CONCURRENCY for gunicorn")
    parser.add_argument("--rounds", type=int, default=200, help="sequential requests per page")
    parser.add_argument("--seconds", type=int, default=15, help="wrk duration per page")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pages", choices=["customers", "segments", "dashboard"], default="customers")
    args = parser.parse_args()

    heavy, words, cities = prepare(args.database_url)
    redis_url = args.redis_url
    if not redis_url:
        from crm.embedded_redis import ensure_started

        redis_url = ensure_started(tempfile.mkdtemp(prefix="bench-redis-"), port=6391)
    server = start_server(args.database_url, redis_url, args.port, args.workers)
    try:
        cookie = sign_in(args.port)
        pages = {
            "customers": {
                "list, filter status=active": ["/customers?status=active"],
                "list, filter city + sort by LTV": [f"/customers?city={city}&sort=ltv" for city in cities],
                "search as you type": [f"/customers?q={w}" for w in words],
                "card with 500 orders": [f"/customers/{heavy}"],
            },
            "segments": {
                "lapsed queue": ["/lapsed?lapse=lapsed"],
                "lapsing queue": ["/lapsed?lapse=lapsing"],
                "lapsed queue, class + channel": ["/lapsed?lapse=lapsed&behaviour=stopped&channel=email"],
                "funnel board": ["/funnel"],
                "RFM grid": ["/segments/rfm"],
            },
            # Each panel as the browser asks for it (htmx); the page itself only holds the placeholders.
            "dashboard": {
                "dashboard page": ["/dashboard"],
                **{f"panel {name}, {label}": [f"/dashboard/panels/{name}?{query}"]
                   for name in ("base", "sales", "reactivation", "rfm", "cohorts", "trends")
                   for label, query in (("30 days", "period=30"), ("365 days", "period=365"))
                   if label == "30 days" or name in ("base", "sales", "reactivation")},
            },
        }[args.pages]
        print(f"database: {args.database_url}  gunicorn workers: {args.workers}")
        print(f"{'page':34} {'1 user p50':>10} {'p95':>8} | {'16 clients p50':>14} {'p95':>8} {'p99':>8} "
              f"{'req/s':>7} err")
        for name, paths in pages.items():
            single = one_user(args.port, cookie, paths, args.rounds)
            many = sixteen_clients(args.port, cookie, paths, args.seconds, args.connections)
            print(f"{name:34} {single['p50']:8.1f}ms {single['p95']:6.1f}ms | {many['p50']:12.1f}ms "
                  f"{many['p95']:6.1f}ms {many['p99']:6.1f}ms {many['rps']:7.0f} {many['errors']}", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


if __name__ == "__main__":
    main()
