"""Reactivation sequences at scale: enrolment, dispatch and delivery through Apprise, and the real
RQ worker, against the targets "enrol 100,000 customers in one sequence in under 30 s" and "at least
200 messages a second per worker process, the send log's commit included".

What it measures, each on fresh enrolments (the benchmark's own sequences, named "[bench] ..."):
1. enrolment: `enrolment.enrol` of `--enrol` customers from a SELECT of ids into a 3-step sequence
   (preferred channel, `--holdout` % held out), commit included; median of `--runs`;
2. SMS: `--messages` customers enrolled in a 1-step "sms" sequence, one `dispatch.run_due` pass
   (send=False: the message rows), then `delivery.send_batch` over all ids in batches of `--batch`,
   one batch after another as the worker's jobs would run them, at each `--concurrency`; the SMS
   channel is `json://127.0.0.1:PORT/sms/{phone}`, an HTTP sink (tests/sinks.py HttpSink) in a
   process of its own so it does not share this one's GIL. Then the limit: bare HTTP POSTs of the
   same JSON payload to the same sink on as many threads (as Apprise does it, a new `requests`
   session per POST; one `requests.Session` per thread; raw `http.client`);
3. email: the same through `mailto://127.0.0.1:PORT?...&mode=insecure` to an aiosmtpd server
   (tests/sinks.py SmtpSink, its own process too), and a cProfile of `--profile-messages` email
   sends one at a time (concurrency 1; the send thread is profiled too): where a message's time goes;
4. the RQ path: a redis-server on a free port, `dispatch.enqueue` (jobs of `--batch` ids), then
   `python worker.py --burst` (a forked work horse per job, as in production); messages/s end to
   end, and the per-job overhead from the jobs' own start and end times.
Every run checks its outcome: the enrolled count, every message "sent", every one received by the sink.

Usage (a database with no customers is migrated and seeded with `--customers` demo customers first):

    python bench/sequences.py --database-url sqlite:////tmp/bench-120k.sqlite3 --customers 120000
    python bench/sequences.py --database-url postgresql://crm@127.0.0.1:5433/bench --only enrol

Demo customers have an email for 85% and a phone for ~80%, consents for ~80% of those channels:
it adds, set-based, an email contact (bench-<id>@example.com), a phone (+1555<1000000 + id>) and a
granted consent for email and SMS to every customer lacking one (refused consents stay refused;
nothing existing is changed). It refuses a database with running enrolments of other sequences
(a dispatch pass would advance them). Before each run and at the end it deletes the benchmark's
sequences, enrolments, messages and timeline entries and gives customers back their cadence status
(`--keep` leaves the last run in place); the Messaging settings are restored as they were.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import multiprocessing
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PREFIX = "[bench]"  # names of the benchmark's sequences and subjects of its messages


# --- the sinks, each in a process of its own -------------------------------------------------------

def _sink_main(kind: str, conn) -> None:
    """Child process: run tests/sinks.py's HttpSink or SmtpSink, answer "count", "reset", "stop"."""
    sys.path.insert(0, str(ROOT))
    from http.server import ThreadingHTTPServer

    from tests.sinks import HttpSink, SmtpSink

    # socketserver listens with a backlog of 5: a burst of 16+ connects (Apprise opens one per
    # message) overflows it and some are reset after a 1 s SYN retry. A real gateway has a deep backlog.
    ThreadingHTTPServer.request_queue_size = 128
    if kind == "http":
        sink = HttpSink().start()
        received = sink.received
    else:
        sink = SmtpSink().start()
        received = sink.mails
    conn.send(sink.port)
    while True:
        command = conn.recv()
        if command == "count":
            with sink.lock:
                conn.send(len(received))
        elif command == "reset":
            with sink.lock:
                received.clear()
            conn.send(0)
        else:
            sink.stop()
            conn.send(0)
            return


class Sink:
    def __init__(self, kind: str):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_sink_main, args=(kind, child), daemon=True)
        self.process.start()
        self.port = self.conn.recv()

    def ask(self, command: str) -> int:
        self.conn.send(command)
        return self.conn.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.ask("stop")
            self.process.join(10)


# --- proposed changes, measured without editing crm/ -----------------------------------------------

def apply_patches(specs: list[str]) -> None:
    """`crm.module=/path/copy.py`: run the copy's code in the module's own namespace, so every caller
    going through the module (`delivery.send_batch`, `channels.send`) gets the copy's functions.
    Log handlers the module added are removed first (the copy adds its own)."""
    import importlib
    import logging

    for spec in specs:
        name, path = spec.split("=", 1)
        module = importlib.import_module(name)
        for logger in [logging.getLogger(), *[logging.getLogger(n) for n in logging.root.manager.loggerDict]]:
            for handler in list(logger.handlers):
                if type(handler).__module__ == name:
                    logger.removeHandler(handler)
        exec(compile(Path(path).read_text(), path, "exec"), module.__dict__)  # noqa: S102 (the engineer's own copy)


# --- the database side ----------------------------------------------------------------------------

def open_app(database_url: str):
    for name in [n for n in os.environ if n.startswith("CHANNEL_") and n.endswith("_URLS")]:
        del os.environ[name]  # they would replace the sinks' URLs
    os.environ.update(APP_ENV="testing", DATABASE_URL=database_url, SECRET_KEY="bench")
    from crm import create_app

    return create_app({"REDIS_URL": None, "INSTANCE_DIR": tempfile.mkdtemp(prefix="bench-instance-")})


def prepare(app, customers: int) -> dict:
    """Seed when empty; give customers lacking them an email, a phone and email/SMS consents.
    Return what the base holds."""
    from sqlalchemy import String, and_, cast, exists, func, insert, inspect, literal, select, true
    from sqlalchemy.orm import aliased

    from crm import clock, demo
    from crm.extensions import db
    from crm.models import Consent, Contact, Customer, Enrolment, EnrolmentState, Sequence

    with app.app_context():
        empty = not inspect(db.engine).has_table("customers")
        if empty or not db.session.scalar(select(func.count()).select_from(Customer)):
            from flask_migrate import upgrade

            upgrade()
            started = time.perf_counter()
            report = demo.seed(customers, "en", 1)
            print(f"seeded {report.customers:,} customers, {report.orders:,} orders in "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
        foreign = db.session.scalar(select(func.count()).select_from(Enrolment).join(Sequence).where(
            Enrolment.state == EnrolmentState.ACTIVE, ~Sequence.name.startswith(PREFIX)))
        if foreign:
            raise SystemExit(f"{foreign} running enrolments of other sequences: a dispatch pass would advance "
                             f"them; use a benchmark database")
        started = time.perf_counter()
        added = {}
        for kind, value in (("email", literal("bench-") + cast(Customer.id, String) + literal("@example.com")),
                            ("phone", literal("+1555") + cast(Customer.id + 1_000_000, String))):
            other = aliased(Contact)
            missing = ~exists().where(other.customer_id == Customer.id, other.kind == kind, other.invalid.is_(False))
            added[kind] = db.session.execute(insert(Contact).from_select(
                ["customer_id", "kind", "value", "invalid"],
                select(Customer.id, literal(kind), value, literal(False)).where(missing))).rowcount
        now = clock.now()
        for channel in ("email", "sms"):
            other = aliased(Consent)
            missing = ~exists().where(and_(other.customer_id == Customer.id, other.channel == channel))
            added[f"{channel} consent"] = db.session.execute(insert(Consent).from_select(
                ["customer_id", "channel", "granted", "changed_at", "how"],
                select(Customer.id, literal(channel), true(), literal(now), literal("bench")).where(missing))).rowcount
        db.session.commit()
        if any(added.values()):  # -1: the driver does not say (psycopg): ANALYZE all the same
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
            print(f"added {', '.join(f'{n:,} {k}' if n >= 0 else f'? {k}' for k, n in added.items())} in "
                  f"{time.perf_counter() - started:.1f}s", flush=True)
        return {"customers": db.session.scalar(select(func.count()).select_from(Customer)),
                "dialect": db.engine.dialect.name}


def reset(app) -> None:
    """Undo every benchmark run: customers back to their cadence status, then delete the benchmark's
    timeline entries, messages, enrolments and sequences."""
    from sqlalchemy import case, delete, select, update

    from crm.extensions import db
    from crm.models import Customer, Enrolment, Interaction, Kind, Lapse, Message, Sequence, SequenceStep, Status

    with app.app_context():
        ours = select(Sequence.id).where(Sequence.name.startswith(PREFIX)).scalar_subquery()
        # The ids first, then updates by id: as one UPDATE ... IN (SELECT ...) PostgreSQL may plan a
        # nested loop over an enrolments table it still believes empty, and take many minutes.
        enrolled = list(db.session.scalars(select(Enrolment.customer_id).where(Enrolment.sequence_id.in_(ours))
                                           .distinct()))
        cadence = case((Customer.lapse == Lapse.LAPSING, Status.LAPSING),
                       (Customer.lapse == Lapse.LAPSED, Status.LAPSED), else_=Status.ACTIVE)
        for start in range(0, len(enrolled), 5000):
            db.session.execute(update(Customer).where(
                Customer.status == Status.IN_SEQUENCE, Customer.id.in_(enrolled[start:start + 5000]))
                .values(status=cadence).execution_options(synchronize_session=False))
        db.session.execute(delete(Interaction).where(Interaction.kind.in_([Kind.SEQUENCE, Kind.MESSAGE_OUT]),
                                                     Interaction.body.startswith(PREFIX)))
        for model in (Message, Enrolment):
            db.session.execute(delete(model).where(model.sequence_id.in_(ours)))
        db.session.execute(delete(SequenceStep).where(SequenceStep.sequence_id.in_(ours)))
        db.session.execute(delete(Sequence).where(Sequence.name.startswith(PREFIX)))
        db.session.commit()


def make_sequence(name: str, channels: list[str], holdout: int = 0) -> int:
    """A sequence sending every day, all day (so dispatch never defers), with a step per channel."""
    from crm.extensions import db
    from crm.models import Sequence, SequenceStep, StepChannel

    sequence = Sequence(name=f"{PREFIX} {name}", window_start=0, window_end=24, weekdays=[1, 2, 3, 4, 5, 6, 7],
                        grace_days=7, holdout_percent=holdout, discount_code="COMEBACK10")
    for position, channel in enumerate(channels, 1):
        sequence.steps.append(SequenceStep(
            position=position, delay_days=0 if position == 1 else 3, delay_hours=0, channel=StepChannel(channel),
            subject=PREFIX + " We miss you, {{ first_name }}",
            body="Hello {{ first_name }}! It has been {{ days_since }} days since your last order. "
                 "Come back for {{ products }}: {{ link }}"))
    db.session.add(sequence)
    db.session.commit()
    return sequence.id


def candidates(limit: int, channel: str | None = None):
    """The SELECT of ids handed to enrol (what a saved segment or the lapsed queue hands it):
    customers not marked do-not-contact, reachable on `channel` when given, lowest ids first."""
    from sqlalchemy import select

    from crm import eligibility
    from crm.models import Customer

    query = select(Customer.id).where(Customer.do_not_contact.is_(False))
    if channel:
        query = query.where(eligibility.enrolable(), eligibility.reachable({channel}))
    return query.order_by(Customer.id).limit(limit)


def set_channels(app, urls: dict[str, str]) -> dict | None:
    """Point the Messaging settings' channels at the sinks; return the stored row value before."""
    from dataclasses import replace

    from crm import settings
    from crm.extensions import db
    from crm.models import TeamSetting
    from crm.settings import KEYS, Messaging

    with app.app_context():
        row = db.session.get(TeamSetting, KEYS[Messaging])
        before = dict(row.value) if row and row.value is not None else None
        settings.save(replace(settings.load(Messaging), urls=urls))
        db.session.commit()
        return before


def restore_channels(app, before: dict | None) -> None:
    from crm.extensions import db
    from crm.models import TeamSetting
    from crm.settings import KEYS, Messaging

    with app.app_context():
        row = db.session.get(TeamSetting, KEYS[Messaging])
        if before is None:
            if row is not None:
                db.session.delete(row)
        else:
            row = row or TeamSetting(key=KEYS[Messaging])
            row.value = before
            db.session.add(row)
        db.session.commit()


# --- 1. enrolment ---------------------------------------------------------------------------------

def enrol_run(app, count: int, holdout: int) -> dict:
    from crm import enrolment
    from crm.extensions import db
    from crm.models import Sequence

    reset(app)
    with app.app_context():
        sequence = db.session.get(Sequence, make_sequence("enrol", ["preferred", "preferred", "preferred"], holdout))
        started = time.perf_counter()
        report = enrolment.enrol(sequence, candidates(count), "segment", None)
        db.session.commit()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "enrolled": report.enrolled, "held_out": report.held_out,
            "skipped": dict(report.skipped)}


# --- 2. and 3. dispatch and delivery ------------------------------------------------------------------

def enrol_for_send(app, channel: str, count: int) -> None:
    from crm import enrolment
    from crm.extensions import db
    from crm.models import Sequence

    reset(app)
    with app.app_context():
        sequence = db.session.get(Sequence, make_sequence(channel, [channel]))
        report = enrolment.enrol(sequence, candidates(count, channel), "segment", None)
        db.session.commit()
        assert report.enrolled == count, f"only {report.enrolled} of {count} enrolled for {channel}: {report.skipped}"


def dispatch_pass(app) -> tuple[float, list[int]]:
    from crm import dispatch
    from crm.extensions import db

    with app.app_context():
        started = time.perf_counter()
        report = dispatch.run_due(send=False)
        seconds = time.perf_counter() - started
        db.session.remove()
    assert report.skipped == 0, f"{report.skipped} messages skipped by the dispatcher"
    return seconds, sorted(report.message_ids)


def send_all(app, ids: list[int], batch: int, concurrency: int) -> tuple[float, dict]:
    """delivery.send_batch over every batch in turn, each in its own app context and session (as
    each job runs in its own work horse); the seconds and the summed counts."""
    from collections import Counter

    from crm import delivery
    from crm.extensions import db

    counts = Counter()
    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        with app.app_context():
            counts += delivery.send_batch(ids[start:start + batch], concurrency).counts
            db.session.remove()
    return time.perf_counter() - started, dict(counts)


def check_sent(app, ids: list[int], sink: Sink, counts: dict) -> None:
    from sqlalchemy import func, select

    from crm.extensions import db
    from crm.models import Message, MessageState

    with app.app_context():
        sent = db.session.scalar(select(func.count()).where(Message.id.in_(ids), Message.state == MessageState.SENT)) \
            if len(ids) < 30000 else None
        received = sink.ask("count")
        if counts.get("sent") == len(ids) and received == len(ids) and sent in (None, len(ids)):
            return
        others = db.session.execute(select(Message.id, Message.state, Message.reason, Message.result).where(
            Message.id.in_(ids), Message.state != MessageState.SENT).limit(5)).all()
    raise AssertionError(f"sent {counts}, {sent} rows sent, {received} received of {len(ids)}; not sent: {others}")


def send_round(app, channel: str, count: int, batch: int, concurrency: int, sink: Sink) -> dict:
    enrol_for_send(app, channel, count)
    sink.ask("reset")
    dispatch_seconds, ids = dispatch_pass(app)
    assert len(ids) == count, f"{len(ids)} of {count} messages queued"
    send_seconds, counts = send_all(app, ids, batch, concurrency)
    check_sent(app, ids, sink, counts)
    return {"dispatch": dispatch_seconds, "send": send_seconds, "rate": count / send_seconds,
            "dispatch_rate": count / dispatch_seconds}


def sample_payload(app) -> tuple[bytes, str]:
    """The JSON Apprise posts for the last message sent (same size), and its recipient's path."""
    from urllib.parse import quote

    from sqlalchemy import select

    from crm.extensions import db
    from crm.models import Message, MessageState

    with app.app_context():
        message = db.session.scalars(select(Message).where(Message.state == MessageState.SENT)
                                     .order_by(Message.id.desc()).limit(1)).one()
        body = json.dumps({"version": "1.0", "title": message.subject, "message": message.body,
                           "attachments": [], "type": "info"}).encode()
        return body, f"/sms/{quote(message.recipient, safe='@')}"


def bare_posts(port: int, path: str, body: bytes, count: int, concurrency: int, how: str) -> float:
    """`count` POSTs of `body` on `concurrency` threads; messages per second."""
    import requests

    url = f"http://127.0.0.1:{port}{path}"
    headers = {"User-Agent": "Apprise", "Content-Type": "application/json"}
    share = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
    failures = []

    def work(n: int) -> None:
        session = requests.Session() if how == "session" else None
        for _ in range(n):
            if how == "requests":  # what Apprise's json:// plugin does: requests.request, a session each time
                status = requests.request("POST", url, data=body, headers=headers, timeout=(4, 4)).status_code
            elif how == "session":
                status = session.post(url, data=body, headers=headers, timeout=(4, 4)).status_code
            else:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                conn.close()
            if status != 200:
                failures.append(status)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(work, share))
    seconds = time.perf_counter() - started
    assert not failures, failures[:5]
    return count / seconds


def bare_smtp(port: int, count: int, concurrency: int) -> float:
    """`count` emails through smtplib on `concurrency` threads, a connection each (as Apprise does),
    about the size of the benchmark's messages; messages per second."""
    import smtplib
    from email.message import EmailMessage

    share = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]

    def work(n: int) -> None:
        for i in range(n):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "shop@example.com", f"bare-{i}@example.com", \
                f"{PREFIX} We miss you, Anna"
            message.set_content("Hello Anna! It has been 120 days since your last order. " * 4)
            with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
                smtp.send_message(message)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(work, share))
    return count / (time.perf_counter() - started)


# --- 3. the email profile ---------------------------------------------------------------------------

def profile_email(app, count: int, batch: int, sink: Sink, top: int) -> str:
    """cProfile (wall clock) of `count` email sends one at a time: this thread and the send thread."""
    from crm import delivery

    enrol_for_send(app, "email", count)
    sink.ask("reset")
    _, ids = dispatch_pass(app)
    main_profile = cProfile.Profile()
    thread_profiles = []
    local = threading.local()
    original = delivery._deliver

    def profiled(plan):
        profile = getattr(local, "profile", None)
        if profile is None:
            profile = local.profile = cProfile.Profile()
            thread_profiles.append(profile)
        profile.enable()
        try:
            return original(plan)
        finally:
            profile.disable()

    delivery._deliver = profiled
    try:
        main_profile.enable()
        seconds, counts = send_all(app, ids, batch, 1)
        main_profile.disable()
    finally:
        delivery._deliver = original
    check_sent(app, ids, sink, counts)
    out = io.StringIO()
    stats = pstats.Stats(main_profile, stream=out)
    for profile in thread_profiles:
        stats.add(profile)
    out.write(f"{count} email messages, concurrency 1, {seconds:.2f}s ({count / seconds:.0f}/s); "
              f"times are wall clock summed over the main and the send thread\n")
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def apprise_split(count: int, smtp_port: int) -> dict:
    """Per message: building the Apprise objects as crm.channels.send does (the masked URL and the
    plugin) against the plugin's notify (the SMTP exchange), one at a time, ms each."""
    import apprise

    from crm import channels

    template = f"mailto://127.0.0.1:{smtp_port}?from=shop@example.com&to={{email}}&mode=insecure"
    built, notified = [], []
    for i in range(count):
        started = time.perf_counter()
        channels.masked(template, "email")
        plugin = apprise.Apprise.instantiate(channels.for_recipient(template, "email", f"split-{i}@example.com"))
        middle = time.perf_counter()
        assert plugin.notify(body="Hello! " * 40, title=f"{PREFIX} split", body_format=apprise.NotifyFormat.TEXT)
        built.append(middle - started)
        notified.append(time.perf_counter() - middle)
    return {"build_ms": statistics.median(built) * 1000, "notify_ms": statistics.median(notified) * 1000}


# --- 4. the RQ worker ------------------------------------------------------------------------------

def worker_round(app, database_url: str, redis_url: str, count: int, batch: int, concurrency: int,
                 sink: Sink, log: Path, patches: list[str]) -> dict:
    from rq import Queue
    from rq.job import Job

    from crm import dispatch
    from crm.extensions import db, redis

    enrol_for_send(app, "sms", count)
    sink.ask("reset")
    dispatch_seconds, ids = dispatch_pass(app)
    app.config.update(REDIS_URL=redis_url, SEND_BATCH=batch)
    app.extensions["crm_redis"] = None
    with app.app_context():
        redis.connection.flushdb()
        started = time.perf_counter()
        jobs = dispatch.enqueue(ids)
        enqueue_seconds = time.perf_counter() - started
        db.session.remove()
    env = {**os.environ, "APP_ENV": "testing", "SECRET_KEY": "bench", "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "SEND_CONCURRENCY": str(concurrency)}
    launched = time.time()
    started = time.perf_counter()
    with log.open("a") as out:
        # As `python worker.py --burst`, with the --patch copies in place first when given.
        command = [sys.executable, "worker.py", "--burst"] if not patches else [sys.executable, "-c", (
            "import runpy, sys; sys.path.insert(0, '.'); from bench.sequences import apply_patches; "
            f"apply_patches({patches!r}); sys.argv = ['worker.py', '--burst']; "
            "runpy.run_path('worker.py', run_name='__main__')")]
        subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=out, check=True, timeout=3600)
    worker_seconds = time.perf_counter() - started
    with app.app_context():
        queue = Queue("default", connection=redis.connection)
        finished = Job.fetch_many(queue.finished_job_registry.get_job_ids(), connection=redis.connection)
        failed = queue.failed_job_registry.count
    assert failed == 0 and len(finished) == jobs, f"{len(finished)} of {jobs} jobs finished, {failed} failed"
    spans = sorted((job.started_at.timestamp(), job.ended_at.timestamp()) for job in finished)
    counts = {}
    for job in finished:
        for key, value in (job.return_value() or {}).items():
            counts[key] = counts.get(key, 0) + value
    check_sent(app, ids, sink, counts)
    running = [end - start for start, end in spans]
    gaps = [spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1)]
    return {"jobs": jobs, "dispatch": dispatch_seconds, "enqueue": enqueue_seconds, "worker": worker_seconds,
            "startup": spans[0][0] - launched, "first_to_last": spans[-1][1] - spans[0][0],
            "job_median": statistics.median(running), "gap_median": statistics.median(gaps) if gaps else 0.0,
            "rate": count / worker_seconds, "rate_jobs": count / (spans[-1][1] - spans[0][0])}


def start_redis() -> tuple[str, object, str]:
    from crm.embedded_redis import start
    from tests.servers import free_port

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    server = start(workdir, port, binary=shutil.which("redis-server"))
    return f"redis://127.0.0.1:{port}/0", server, workdir


# --- output ---------------------------------------------------------------------------------------

def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def spread(runs: list[dict], key: str, fmt: str = "{:.1f}") -> str:
    return " / ".join(fmt.format(run[key]) for run in runs)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite:////tmp/bench-sequences.sqlite3")
    parser.add_argument("--customers", type=int, default=120_000, help="demo customers to seed into an empty base")
    parser.add_argument("--only", choices=["enrol", "sms", "email", "worker"], action="append",
                        help="run only these parts (repeatable); default all")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--enrol", type=int, default=100_000, help="customers in the SELECT handed to enrol")
    parser.add_argument("--holdout", type=int, default=10, help="holdout percent of the enrolment sequence")
    parser.add_argument("--messages", type=int, default=10_000, help="SMS messages per run")
    parser.add_argument("--email-messages", type=int, default=10_000, help="email messages per run")
    parser.add_argument("--batch", type=int, default=200, help="ids per send job (SEND_BATCH)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16, 32],
                        help="send concurrency within a batch; the first one also for email and the worker")
    parser.add_argument("--email-concurrency", type=int, nargs="+", default=[16], help="send concurrency for email")
    parser.add_argument("--bare", choices=["requests", "session", "http.client"], nargs="*",
                        default=["requests", "session", "http.client"],
                        help="bare POST loops to run (none: `--bare` alone)")
    parser.add_argument("--profile-messages", type=int, default=500, help="email sends profiled; 0 skips")
    parser.add_argument("--top", type=int, default=25, help="profile rows shown")
    parser.add_argument("--skip-email", action="store_true")
    parser.add_argument("--skip-worker", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the last run's rows in place")
    parser.add_argument("--patch", action="append", default=[], metavar="crm.MODULE=PATH",
                        help="measure a proposed change: run PATH (a copy of the module) in the module's place, "
                             "here and in the worker (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or ["enrol", "sms", "email", "worker"])
    if args.skip_email:
        parts.discard("email")
    if args.skip_worker:
        parts.discard("worker")

    apply_patches(args.patch)
    app = open_app(args.database_url)
    base = prepare(app, args.customers)
    sinks: dict[str, Sink] = {}
    redis_server = None
    channels_before = "unset"
    table = []  # (what, figure, target, met)
    try:
        print(f"database: {args.database_url} ({base['dialect']}, {base['customers']:,} customers)  "
              f"cores: {os.cpu_count()}  load average before: {load_average()}"
              + (f"  patched: {', '.join(args.patch)}" if args.patch else ""), flush=True)
        # Both channels set up (enrolment counts a customer reachable only on a configured channel).
        sinks["http"], sinks["smtp"] = Sink("http"), Sink("smtp")
        urls = {"sms": f"json://127.0.0.1:{sinks['http'].port}/sms/{{phone}}",
                "email": f"mailto://127.0.0.1:{sinks['smtp'].port}?from=shop@example.com&to={{email}}&mode=insecure"}
        channels_before = set_channels(app, urls)
        print(f"sinks (own processes): {', '.join(urls.values())}", flush=True)
        if "enrol" in parts:
            runs = []
            for _ in range(args.runs):
                runs.append(enrol_run(app, args.enrol, args.holdout))
                run = runs[-1]
                print(f"enrol {args.enrol:,} from a SELECT: {run['seconds']:.1f}s  enrolled {run['enrolled']:,}, "
                      f"held out {run['held_out']:,}, skipped {run['skipped']}", flush=True)
            seconds = median_of(runs, "seconds")
            table.append((f"enrol {args.enrol:,} (SELECT of ids, {args.holdout}% holdout), median of {len(runs)}",
                          f"{seconds:.1f} s ({spread(runs, 'seconds')})", "< 30 s", seconds < 30))

        if "sms" in parts:
            dispatches, sent = [], {}
            for concurrency in args.concurrency:
                runs = []
                for _ in range(args.runs):
                    runs.append(send_round(app, "sms", args.messages, args.batch, concurrency, sinks["http"]))
                    run = runs[-1]
                    print(f"sms {args.messages:,}, concurrency {concurrency}: dispatch {run['dispatch']:.1f}s "
                          f"({run['dispatch_rate']:.0f}/s), send {run['send']:.1f}s ({run['rate']:.0f}/s)  "
                          f"load {load_average()}", flush=True)
                dispatches += runs
                sent[concurrency] = runs
            table.append((f"dispatch (`run_due`) of {args.messages:,} due enrolments, median of {len(dispatches)}",
                          f"{median_of(dispatches, 'dispatch'):.1f} s = {median_of(dispatches, 'dispatch_rate'):.0f}/s",
                          "—", None))
            body, path = sample_payload(app)
            for concurrency, runs in sent.items():
                rate = median_of(runs, "rate")
                table.append((f"`send_batch`, SMS (json:// to the HTTP sink), batches of {args.batch}, "
                              f"concurrency {concurrency}, median of {len(runs)}",
                              f"{rate:.0f} msg/s ({spread(runs, 'rate', '{:.0f}')})", ">= 200 msg/s", rate >= 200))
                for how in args.bare:
                    rates = [bare_posts(sinks["http"].port, path, body, args.messages, concurrency, how)
                             for _ in range(args.runs)]
                    limit = statistics.median(rates)
                    print(f"bare POST loop ({how}), {len(body)}-byte JSON, {concurrency} threads: "
                          f"{' / '.join(f'{r:.0f}' for r in rates)}/s", flush=True)
                    table.append((f"  limit: bare POSTs ({how}), {concurrency} threads; `send_batch` / limit",
                                  f"{limit:.0f} msg/s; {rate / limit:.2f}", "—", None))
            sinks["http"].ask("reset")

        if "email" in parts:
            for concurrency in args.email_concurrency:
                runs = []
                for _ in range(args.runs):
                    runs.append(send_round(app, "email", args.email_messages, args.batch, concurrency, sinks["smtp"]))
                    run = runs[-1]
                    print(f"email {args.email_messages:,}, concurrency {concurrency}: dispatch {run['dispatch']:.1f}s, "
                          f"send {run['send']:.1f}s ({run['rate']:.0f}/s)  load {load_average()}", flush=True)
                rate = median_of(runs, "rate")
                table.append((f"`send_batch`, email (mailto:// to aiosmtpd), batches of {args.batch}, "
                              f"concurrency {concurrency}, median of {len(runs)}",
                              f"{rate:.0f} msg/s ({spread(runs, 'rate', '{:.0f}')})", ">= 200 msg/s", rate >= 200))
                rates = [bare_smtp(sinks["smtp"].port, args.email_messages, concurrency) for _ in range(args.runs)]
                limit = statistics.median(rates)
                print(f"bare smtplib loop (a connection per message), {concurrency} threads: "
                      f"{' / '.join(f'{r:.0f}' for r in rates)}/s", flush=True)
                table.append((f"  limit: bare smtplib sends (a connection each), {concurrency} threads; "
                              f"`send_batch` / limit", f"{limit:.0f} msg/s; {rate / limit:.2f}", "—", None))
            split = apprise_split(200, sinks["smtp"].port)
            table.append(("per email, one at a time, median: Apprise objects built (masked URL + plugin) · "
                          "plugin.notify (TLS context + SMTP exchange)",
                          f"{split['build_ms']:.2f} ms · {split['notify_ms']:.2f} ms", "—", None))
            if args.profile_messages:
                print(profile_email(app, args.profile_messages, args.batch, sinks["smtp"], args.top), flush=True)
            sinks["smtp"].ask("reset")

        if "worker" in parts:
            redis_url, redis_server, redis_dir = start_redis()
            log = Path(tempfile.mkdtemp(prefix="bench-worker-")) / "worker.log"
            concurrency = 16 if 16 in args.concurrency else args.concurrency[0]
            runs = []
            for _ in range(args.runs):
                runs.append(worker_round(app, args.database_url, redis_url, args.messages, args.batch, concurrency,
                                         sinks["http"], log, args.patch))
                run = runs[-1]
                print(f"worker --burst, {args.messages:,} SMS in {run['jobs']} jobs, concurrency {concurrency}: "
                      f"enqueue {run['enqueue']:.2f}s, worker {run['worker']:.1f}s ({run['rate']:.0f}/s; "
                      f"startup {run['startup']:.1f}s, first job start to last job end {run['first_to_last']:.1f}s = "
                      f"{run['rate_jobs']:.0f}/s; job {run['job_median'] * 1000:.0f} ms, between jobs "
                      f"{run['gap_median'] * 1000:.0f} ms)  load {load_average()}  log: {log}", flush=True)
            rate = median_of(runs, "rate")
            table.append((f"RQ: enqueue + `worker.py --burst`, {args.messages:,} SMS, jobs of {args.batch}, "
                          f"concurrency {concurrency}, end to end, median of {len(runs)}",
                          f"{rate:.0f} msg/s ({spread(runs, 'rate', '{:.0f}')})", ">= 200 msg/s", rate >= 200))
            table.append(("RQ: first job start to last job end (worker start-up excluded)",
                          f"{median_of(runs, 'rate_jobs'):.0f} msg/s", "—", None))
            table.append(("RQ: per job, median: running · gap to the next (fork, fetch)",
                          f"{median_of(runs, 'job_median') * 1000:.0f} ms · "
                          f"{median_of(runs, 'gap_median') * 1000:.0f} ms", "—", None))

        print(f"\nload average after: {load_average()}\n")
        print("| what | figure | target | met |\n|---|---|---|---|")
        for what, figure, target, met in table:
            print(f"| {what} | {figure} | {target} | {'' if met is None else ('yes' if met else 'NO')} |")
    finally:
        for sink in sinks.values():
            sink.stop()
        if redis_server is not None:
            from crm.embedded_redis import stop

            stop(redis_server)
            shutil.rmtree(redis_dir, ignore_errors=True)
        if channels_before != "unset":
            restore_channels(app, channels_before)
        if not args.keep:
            reset(app)


if __name__ == "__main__":
    main()
