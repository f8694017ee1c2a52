"""A team's working day, as locust users: the scenario bench/load.py runs (headless) against gunicorn.

Not run on its own: bench/load.py prepares the base (managers with call-backs due today, the owner,
API tokens, search words) and passes it in a JSON file named by $LOAD_PLAN. Each request is checked
(status and what the page must hold); a failed check counts as an error in locust's statistics.

- Manager (one locust user per benchmark manager): opens the call-back queue, opens the first
  customer's card, logs the call's outcome with one click (htmx), then looks someone up: search as
  you type (htmx, a letter at a time) and opens a card from the results. Thinks 1-4 s between the two.
- Owner: the dashboard page and its six panels as htmx loads them, for a period chosen at random.
- Till (one per API token, each under its own rate limit): posts api_rate / tills orders a second,
  for a known customer (by email) most of the time, a new one otherwise.

The session cookie is Secure (production config), so it is sent by hand over loopback http.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import uuid
from datetime import UTC, datetime

from locust import FastHttpUser, between, constant_throughput, events, task

PLAN = json.loads(open(os.environ["LOAD_PLAN"], encoding="utf-8").read())
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')
CALL_ROW = re.compile(r'id="call-(\d+)" tabindex')
CARD_LINK = re.compile(r'href="/customers/(\d+)"')
# What a manager logs, with what the row's small form asks for "not interested" (the others are one click).
OUTCOMES = (("no_answer", {}), ("no_answer", {}), ("responded", {}), ("wrong_number", {}),
            ("not_interested", {"reason": "price"}))

_managers = iter(PLAN["managers"])
_tokens = itertools.cycle(PLAN["tokens"])


class Signed(FastHttpUser):
    """A browser user: signs in through the form, then sends the session cookie on every request."""

    abstract = True
    cookie = ""
    token = ""

    def sign_in(self, email: str, password: str) -> None:
        with self.client.get("/login", name="login page", catch_response=True) as page:
            cookie = page.headers.get("Set-Cookie", "").split(";", 1)[0]
            token = CSRF.search(page.text).group(1)
        with self.client.post("/login", name="sign in", data={"email": email, "password": password,
                                                              "csrf_token": token},
                              headers={"Cookie": cookie}, allow_redirects=False, catch_response=True) as answer:
            if answer.status_code != 302:
                answer.failure(f"sign in: {answer.status_code}")
                raise RuntimeError(f"{email} could not sign in")
            self.cookie = answer.headers["Set-Cookie"].split(";", 1)[0]

    def page(self, path: str, name: str, expect: str | None = None, htmx: bool = False) -> str:
        headers = {"Cookie": self.cookie, **({"HX-Request": "true"} if htmx else {})}
        with self.client.get(path, name=name, headers=headers, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}")
                return ""
            if expect and expect not in answer.text:
                answer.failure(f"missing {expect!r}")
            if not self.token and (found := CSRF.search(answer.text)):
                self.token = found.group(1)
            # A session that gained the CSRF token comes back with a new cookie; keep it.
            if set_cookie := answer.headers.get("Set-Cookie"):
                self.cookie = set_cookie.split(";", 1)[0]
            return answer.text


class Manager(Signed):
    """Works the call-back queue and looks customers up."""

    weight = 0  # fixed_count below decides how many
    fixed_count = len(PLAN["managers"])
    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.email, password = next(_managers)
        self.sign_in(self.email, password)

    @task
    def work_the_queue(self) -> None:
        queue = self.page("/callbacks", "call-back queue", expect="call-progress")
        rows = CALL_ROW.findall(queue)
        if not rows:  # the day's calls are done (the daily cap): nothing to click
            return
        callback = rows[0]
        customer = CARD_LINK.search(queue[queue.index(f'id="call-{callback}"'):])
        if customer:
            self.page(f"/customers/{customer.group(1)}", "customer card", expect="card-grid")
        outcome, more = random.choice(OUTCOMES)
        with self.client.post(f"/callbacks/{callback}/outcome", name="log call outcome (htmx)",
                              data={"outcome": outcome, "csrf_token": self.token, **more},
                              headers={"Cookie": self.cookie, "HX-Request": "true", "X-CSRFToken": self.token},
                              catch_response=True) as answer:
            # 409: another manager logged this row a moment ago (the row says so) - a right answer.
            if answer.status_code not in (200, 409):
                answer.failure(f"{answer.status_code}")

    @task
    def look_someone_up(self) -> None:
        word = random.choice(PLAN["words"])
        found = ""
        for n in range(2, len(word) + 1):  # typed letter by letter; htmx asks at each pause
            found = self.page(f"/customers?q={word[:n]}", "search as you type (htmx)", htmx=True)
        if match := CARD_LINK.search(found):
            self.page(f"/customers/{match.group(1)}", "customer card", expect="card-grid")


class Owner(Signed):
    """Looks at the dashboard, a period at a time."""

    weight = 0
    fixed_count = 1
    wait_time = between(3, 8)

    def on_start(self) -> None:
        self.sign_in(*PLAN["owner"])

    @task
    def dashboard(self) -> None:
        period = random.choice(("month", "30", "90", "365"))
        self.page(f"/dashboard?period={period}", "dashboard page", expect="panel")
        for panel in ("base", "sales", "reactivation", "rfm", "cohorts", "trends"):
            self.page(f"/dashboard/panels/{panel}?period={period}", f"dashboard panel {panel} (htmx)", htmx=True)


class Till(FastHttpUser):
    """A shop's till or web shop posting paid orders with its own API token."""

    weight = 0
    fixed_count = len(PLAN["tokens"])
    wait_time = constant_throughput(PLAN["api_rate"] / len(PLAN["tokens"]))

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {next(_tokens)}", "Content-Type": "application/json"}

    @task
    def post_order(self) -> None:
        if random.random() < 0.8:
            customer = {"email": random.choice(PLAN["emails"])}
        else:
            customer = {"name": "Walk-in Customer", "email": f"load-{uuid.uuid4().hex[:12]}@example.com"}
        order = {"external_id": f"load-{uuid.uuid4().hex}", "placed_at": datetime.now(UTC).isoformat(),
                 "amount": f"{random.randint(500, 20000) / 100:.2f}", "currency": PLAN["currency"],
                 "customer": customer}
        with self.client.post("/api/v1/orders", name="API: post an order", data=json.dumps(order),
                              headers=self.headers, catch_response=True) as answer:
            if answer.status_code != 201:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")


@events.quitting.add_listener
def _no_silent_errors(environment, **_kwargs) -> None:
    # Locust exits 0 unless told otherwise; any failed request makes the run fail.
    if environment.stats.total.num_failures:
        environment.process_exit_code = 1
