"""Nothing lost, nothing doubled: sequence messages through real faults, counted at the receiving end.

A due sequence (email, consent given; three steps by default, the later ones due once the step
before is out) goes out through the real worker (`python worker.py`, RQ on a real redis-server) to an
SMTP sink on loopback, while this process plays the per-minute dispatcher twice over: its own loop and
a second thread each call `crm.dispatch.run_due` every second or so (two schedulers at once; the
worker's clock adds a third every minute). A pass also repairs: it enqueues again what lost its job,
and marks "uncertain" what a killed worker left "sending". Meanwhile:

- the worker (its work horse and scheduler too, as a dying host takes them) is killed with SIGKILL at
  random every few seconds and started again;
- Redis is stopped and started on the same port once, and flushed (FLUSHALL) once;
- PostgreSQL (with --postgres: a throwaway cluster of this script's own) is stopped cold and started
  again once; dispatch passes and jobs that meet it fail and are tried again;
- the SMTP sink answers a random share of DATA commands with 451 (try again later), drops a share of
  connections before DATA (the message must be tried again) and a share right after the whole message
  arrived, before its 250 (the message may have been taken: it must end "uncertain", never resent);
- customers answer mid-run through the product's own paths (a click on the tracked link, a call a
  manager logs as reached), and a manager moves others to the inactive list after a call: nothing may
  reach them after that moment, except a message already "sending" then (the documented window).

Passing failures back off for minutes (crm.delivery.BACKOFF) and later steps wait days; to keep the run
short this script moves `not_before` of messages waiting for their next try, and `next_at` of
enrolments whose previous step is out, into the past (the same as waiting it out).

At the end, with every message row in a final state, it compares the rows with what the sink got,
by Message-ID (`<crm-{enrolment}-{step}@host>`), and prints: expected, delivered once, duplicates,
uncertain (with and without a mail at the sink), failed, lost, mails without a row, mails after an
answer or the inactive list (inside / outside the window), the faults met, and the wall time; it exits
0 only when nothing was lost or doubled, every mail without a 250 is flagged, and nobody got a mail
after answering or being moved to inactive outside the window:

    .venv/bin/python bench/faults.py --postgres           # 10,000 messages, PostgreSQL restarted once
    .venv/bin/python bench/faults.py                      # 10,000 messages, SQLite file
    .venv/bin/python bench/faults.py --messages 2000 --database-url postgresql://crm@127.0.0.1:5433/faults

The harness (`Rig`, `Sink`, `PostgresCluster`, `run`, `tally`) is what tests/test_faults.py drives at a
smaller size.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("APP_ENV", "testing")  # before the app is imported, as tests/conftest.py does

import psutil
from aiosmtpd.controller import Controller
from redis import Redis
from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from crm import callbacks, clock, create_app, customers, dispatch, enrolment, responses, sequences, settings, workdays
from crm.extensions import db
from crm.models import (
    CallBack,
    Channel,
    Consent,
    Contact,
    ContactKind,
    Customer,
    Enrolment,
    EnrolmentState,
    Message,
    MessageState,
    Role,
    StepChannel,
    User,
)
from tests import servers
from tests.runtime import host_env
from tests.servers import free_port, wait_for_port
from tests.sinks import Mail, SmtpSink

MESSAGE_ID = re.compile(r"<crm-(\d+)-(\d+)@")
UNFINISHED = (MessageState.QUEUED, MessageState.SENDING)


# --- the receiving end ---------------------------------------------------------------------------

def key_of(mail: Mail) -> tuple[int, int] | None:
    """(enrolment id, step) from a mail's Message-ID; None for a mail the CRM did not make."""
    match = MESSAGE_ID.search(mail.message_id or "")
    return (int(match[1]), int(match[2])) if match else None


class _Handler:
    """tests.sinks' SMTP handler, plus refusals per recipient (550 at RCPT), a random share of DATA
    commands answered 451, and connections dropped without a word: before DATA (at RCPT), or once
    the whole message arrived (kept, as a server that queued it and then lost the connection)."""

    def __init__(self, sink: Sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        sink = self.sink
        if sink.refuse_rcpt:
            return sink.refuse_rcpt
        if address in sink.bounce:
            sink.count("bounced")
            return "550 5.1.1 No such user"
        if sink.drop_before and sink.rng.random() < sink.drop_before:
            sink.count("dropped_before_data")
            server.transport.abort()
            return "421 4.4.2 Connection dropped"  # never reaches the client: the socket is gone
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        sink = self.sink
        if sink.refuse_data:
            sink.count("refused_data")
            return sink.refuse_data
        if sink.flaky and sink.rng.random() < sink.flaky:
            sink.count("refused_data")
            return "451 4.3.0 Try again later"
        mail = Mail(envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content))
        drop = bool(sink.drop_after) and sink.rng.random() < sink.drop_after
        with sink.lock:
            sink.mails.append(mail)
            sink.arrived.append(time.time())
            count = len(sink.mails)
            if drop:
                sink.refusals["dropped_after_data"] += 1
                sink.unanswered[key_of(mail)] += 1
        if sink.on_mail is not None:
            sink.on_mail(count)  # before the 250: a worker killed here dies with this mail on the wire
        if drop:
            server.transport.abort()
        return "250 Message accepted for delivery"


@dataclass
class Sink(SmtpSink):
    """tests.sinks.SmtpSink with `bounce` (addresses refused with 550 at RCPT), `flaky` (the share
    of DATA commands refused with 451), `drop_before` / `drop_after` (the shares of sessions cut at
    RCPT, and right after a whole message arrived: before its 250) and `on_mail` (a hook run as each
    mail arrives); counts its refusals and drops in `refusals`, keeps each mail's arrival time."""

    bounce: set[str] = field(default_factory=set)
    flaky: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    refusals: Counter = field(default_factory=Counter)
    arrived: list[float] = field(default_factory=list)  # time.time() of each mail in `mails`
    unanswered: Counter = field(default_factory=Counter)  # (enrolment, step) of mails kept but never answered
    on_mail: Callable[[int], None] | None = None  # called with the count of mails, before answering 250

    def start(self) -> Sink:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def count(self, what: str) -> None:
        with self.lock:
            self.refusals[what] += 1

    def received(self) -> dict:
        """When each (enrolment id, step) arrived (a list: more than one is a duplicate); key None:
        mails without a CRM Message-ID."""
        with self.lock:
            mails = list(zip(self.mails, self.arrived, strict=True))
        found: dict = {}
        for mail, moment in mails:
            found.setdefault(key_of(mail), []).append(moment)
        return found


# --- servers that can be stopped and started on their port -----------------------------------------

class RedisProcess:
    """A redis-server on a fixed loopback port, without persistence (a restart loses everything,
    like a host's Redis that came back empty)."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no", "--logfile", str(self.workdir / "redis.log")],
            stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class PostgresCluster:
    """A throwaway PostgreSQL cluster (tests.servers.postgres_server) that can be stopped cold
    (`pg_ctl stop -m immediate`: every connection cut, as a crashed host) and started again on the
    same port and data directory. Not for TEST_POSTGRES_URL: a server this script does not own."""

    def __init__(self):
        self._stack = contextlib.ExitStack()
        self.admin_url = ""
        self.data = ""
        self.as_user: list[str] = []

    def start(self) -> PostgresCluster:
        if os.environ.get("TEST_POSTGRES_URL"):
            raise RuntimeError("--postgres starts a cluster of its own; unset TEST_POSTGRES_URL "
                               "(or pass --database-url: no restart then)")
        self.admin_url = self._stack.enter_context(servers.postgres_server())
        import psycopg

        with psycopg.connect(self.admin_url) as conn:
            self.data = conn.execute("SHOW data_directory").fetchone()[0]
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return self

    def database(self, name: str) -> str:
        """A new empty database in the cluster; its SQLAlchemy URL."""
        import psycopg

        url = servers.create_database(self.admin_url, name)
        # The test clusters trade durability for speed (synchronous_commit=off); a crash then undoes
        # commits already acknowledged (a hand-over to "sending" among them: the message goes out
        # twice), which no delivery guarantee survives. Production runs with PostgreSQL's default.
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
        return url.replace("postgresql://", "postgresql+psycopg://")

    def _pg_ctl(self, *args: str) -> None:
        log = str(Path(self.data).parent / "log")
        subprocess.run([*self.as_user, servers._pg_bin("pg_ctl"), "-D", self.data, "-l", log, *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start again with the options it last ran with (postmaster.opts: the same port)."""
        self._pg_ctl("-w", "restart")

    def close(self) -> None:
        self._stack.close()


# --- the rig: database, dispatchers (this process) and worker (a subprocess) ------------------------

@dataclass
class Tally:
    expected: int  # due steps: one message each (a customer's steps after answering are not due)
    rows: int = 0
    delivered_once: int = 0  # sent, and exactly one mail at the sink
    duplicates: int = 0  # rows whose Message-ID reached the sink more than once
    uncertain_sent: int = 0  # uncertain, and the sink has its one mail
    uncertain_unsent: int = 0  # uncertain, and nothing reached the sink
    unanswered: int = 0  # of the uncertain: the sink kept the mail and cut the connection before its 250
    failed: int = 0  # refused for good (or gave up), nothing at the sink
    skipped: int = 0
    lost: int = 0  # due steps without a row, rows "sent" without a mail, rows still queued/sending
    orphans: int = 0  # mails at the sink without a message row
    unflagged: int = 0  # mails at the sink whose row is neither sent nor uncertain, or sent though never answered
    stopped: int = 0  # customers who answered or were moved to inactive mid-run
    stopped_steps: int = 0  # their steps not sent because of it (skipped rows, or never made)
    after_inside: int = 0  # mails to them after that moment, handed over ("sending") before it: the window
    after_outside: int = 0  # ... handed over after it: must be none
    states: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def uncertain(self) -> int:
        return self.uncertain_sent + self.uncertain_unsent

    @property
    def ok(self) -> bool:
        return (not self.problems and self.lost == 0 and self.duplicates == 0 and self.unflagged == 0
                and self.after_outside == 0 and self.orphans == 0
                and self.delivered_once + self.uncertain + self.failed == self.expected)

    def line(self) -> str:
        return (f"expected {self.expected:,}  delivered once {self.delivered_once:,}  duplicates {self.duplicates}  "
                f"uncertain {self.uncertain} ({self.uncertain_sent} reached the sink, {self.uncertain_unsent} did "
                f"not)  failed {self.failed}  skipped {self.skipped}  lost {self.lost}  orphan mails {self.orphans}  "
                f"unflagged {self.unflagged}  after an answer/inactive {self.after_inside} inside the window, "
                f"{self.after_outside} outside")


@dataclass
class Stop:
    """A customer who answered or was moved to inactive during the run, and when (UTC, from just
    before the call to just after its commit)."""

    how: str
    before: datetime
    after: datetime


def aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment  # SQLite: naive


class Rig:
    """One scenario's world: the database (schema made here), the app in this process for dispatching
    and checking, and worker subprocesses started and killed at will."""

    def __init__(self, workdir: Path, database_url: str, redis_url: str, sink: SmtpSink, *, batch: int = 25,
                 requeue_after: int = 2, uncertain_after: int = 5, concurrency: int = 16, skip_ca_store: bool = False,
                 log=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.redis_url = redis_url
        self.sink = sink
        self.log = log or (lambda text: None)
        self.knobs = {"SEND_BATCH": batch, "SEND_REQUEUE_AFTER": requeue_after,
                      "SEND_UNCERTAIN_AFTER": uncertain_after, "SEND_CONCURRENCY": concurrency}
        self.app = create_app({
            "SECRET_KEY": "faults", "INSTANCE_DIR": str(self.workdir / "instance"),
            "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url, **self.knobs})
        # Apprise builds an SSL context (loading the system's CA store, ~40 ms of CPU) for every email,
        # even over plain SMTP; pointing the worker at no CA store makes that free where no TLS is used.
        self.skip_ca_store = skip_ca_store
        self.worker: subprocess.Popen | None = None
        self.lock = threading.RLock()  # the worker is killed from the sink's thread too (see run)
        self.worker_log = open(self.workdir / "worker.log", "ab")  # noqa: SIM115 (closed in close())
        self.kills = 0
        self.starts = 0
        self.counts_lock = threading.Lock()  # two dispatchers count at once
        self.dispatch_errors: Counter = Counter()  # (dispatcher, error type) of passes that met a fault
        self.dispatch_runs: Counter = Counter()  # passes per dispatcher
        self.passes: Counter = Counter()  # what this process's dispatch passes did: jobs, requeued, uncertain
        self.observer_errors: Counter = Counter()  # this script's own looks that met a fault (retried)
        self.sequence_id: int | None = None
        self.steps = 1
        self.customer_ids: list[int] = []
        self.stops: dict[int, Stop] = {}  # customer id -> when they answered / were moved to inactive
        self.second: threading.Thread | None = None
        self.second_stop = threading.Event()

    # the data

    def seed(self, count: int, bounce_every: int = 0, steps: int = 1) -> list[int]:
        """Make the schema, the email channel pointing at the sink, `count` customers with an email
        address and consent (set-based), a sequence whose first step is due now, and enrol them all.
        With `steps` above 1, the later steps fall due a day after the one before (moved into the
        past by `hurry_steps`). With `bounce_every`, every so many customers' addresses are refused
        by the sink with 550."""
        with self.app.app_context():
            db.create_all()
            owner = User(email="owner@example.com", name="Owner", password_hash="-", role=Role.OWNER)
            manager = User(email="manager@example.com", name="Manager", password_hash="-", role=Role.MANAGER)
            db.session.add_all([owner, manager])
            settings.save(settings.Messaging(urls={"email": self.sink.url()}, weekly_cap=50))
            now = clock.now()
            ids = list(db.session.scalars(insert(Customer).returning(Customer.id, sort_by_parameter_order=True), [
                {"name": f"Customer {n}", "sort_name": f"customer {n}", "source": "faults", "created_at": now,
                 "updated_at": now} for n in range(count)]))
            db.session.execute(insert(Contact), [
                {"customer_id": cid, "kind": ContactKind.EMAIL, "value": address_of(cid), "invalid": False}
                for cid in ids])
            db.session.execute(insert(Consent), [
                {"customer_id": cid, "channel": Channel.EMAIL, "granted": True, "changed_at": now, "how": "faults"}
                for cid in ids])
            sequence = sequences.create(3, "Faults", owner)
            sequence.window_start, sequence.window_end = 0, 24  # the send window never defers
            sequence.grace_days = 365  # nobody leaves for "no response" during the run
            for step in sequence.steps:
                step.channel = StepChannel.EMAIL
                # The first step is due at once, the next ones a day after the one before, and only
                # `steps` of them fall due during the run.
                step.delay_days = 0 if step.position == 1 else 1 if step.position <= steps else 365
            db.session.flush()
            report = enrolment.enrol(sequence, ids, "faults", None, now=now - timedelta(seconds=1))
            assert report.enrolled == count, report
            self.sequence_id = sequence.id
            db.session.commit()
        if bounce_every:
            self.sink.bounce |= {address_of(cid) for cid in ids[::bounce_every]}
        self.steps = steps
        self.customer_ids = ids
        return ids

    # the dispatchers

    def dispatch(self, name: str = "main") -> dispatch.Pass | None:
        """One pass of the dispatcher (with repair), as the worker's clock runs it every minute; a
        pass that meets a fault (Redis away, the database away or busy) is counted and tried next time."""
        with self.app.app_context():
            try:
                report = dispatch.run_due()
                with self.counts_lock:
                    self.dispatch_runs[name] += 1
                    self.passes.update(jobs=report.jobs, requeued=report.requeued, uncertain=report.uncertain)
                return report
            except Exception as error:  # noqa: BLE001 (counted and shown; the next pass tries again)
                with contextlib.suppress(Exception):
                    db.session.rollback()
                with self.counts_lock:
                    self.dispatch_runs[name] += 1
                    self.dispatch_errors[(name, type(error).__name__)] += 1
                self.log(f"dispatch ({name}): {type(error).__name__}: {str(error).splitlines()[0][:200]}")
                return None
            finally:
                db.session.remove()

    def start_second_dispatcher(self, every: float = 1.0) -> None:
        """A second scheduler, at the same time as this process's loop: a thread with its own app
        context (its own session and connections) calling the same dispatch pass."""
        self.second_stop.clear()

        def loop() -> None:
            while not self.second_stop.wait(every):
                self.dispatch("second")

        self.second = threading.Thread(target=loop, name="second-dispatcher", daemon=True)
        self.second.start()

    def stop_second_dispatcher(self) -> None:
        if self.second is not None:
            self.second_stop.set()
            self.second.join(120)
            self.second = None

    def hurry_backoff(self) -> int:
        """Move `not_before` of messages waiting for their next try to now: the same as waiting out
        crm.delivery.BACKOFF (minutes), which a test cannot afford. A send job's lease on the messages
        it is about to send (not_before a few seconds ahead, see crm.delivery) is left alone."""
        horizon = clock.now() + timedelta(seconds=self.knobs["SEND_REQUEUE_AFTER"] + 10)
        with self.app.app_context():
            moved = db.session.execute(update(Message).where(
                Message.state == MessageState.QUEUED, Message.not_before > horizon)
                .values(not_before=clock.now() - timedelta(seconds=1))).rowcount
            db.session.commit()
            db.session.remove()
            return moved

    def hurry_steps(self) -> int:
        """Make the next step of running enrolments due now once their previous step is out (no
        message of theirs queued or sending): the same as waiting out the step's delay (days)."""
        if self.steps < 2:
            return 0
        with self.app.app_context():
            moved = db.session.execute(update(Enrolment).where(
                Enrolment.sequence_id == self.sequence_id, Enrolment.state == EnrolmentState.ACTIVE,
                Enrolment.next_step <= self.steps, Enrolment.next_at > clock.now(),
                ~exists(select(1).where(Message.enrolment_id == Enrolment.id, Message.state.in_(UNFINISHED))))
                .values(next_at=clock.now() - timedelta(seconds=1)).execution_options(synchronize_session=False)
            ).rowcount
            db.session.commit()
            db.session.remove()
            return moved

    # customers who answer, or are moved to the inactive list, mid-run (the product's own paths)

    def stop_customers(self, customer_ids: list[int], how: str) -> int:
        """Each customer in their own transaction, as people do it: "click" (the tracked link in their
        latest message: crm.responses.click, as /l/<token> does), "call" (a manager logs a call
        as reached: crm.customers.log_call) or "inactive" (a call-back assigned to the manager, who
        logs it as not interested and moves them to the inactive list: crm.callbacks.log_outcome).
        Return how many it stopped."""
        done = 0
        with self.app.app_context():
            owner = db.session.scalar(select(User).where(User.role == Role.OWNER))
            manager = db.session.scalar(select(User).where(User.role == Role.MANAGER))
            day = clock.team_today()
            if not workdays.is_working_day(day):
                day = workdays.next_working_day(day)
            for customer_id in customer_ids:
                if customer_id in self.stops:
                    continue
                customer = db.session.get(Customer, customer_id)
                before = clock.now()
                try:
                    message = db.session.scalar(select(Message).where(
                        Message.customer_id == customer_id, Message.state == MessageState.SENT)
                        .order_by(Message.step.desc()).limit(1))
                    if how == "click" and message is not None:
                        responses.click(message)
                    elif how in ("click", "call"):  # nothing to click in yet: they pick up the phone
                        customers.log_call(customer, "reached", "faults: picked up", manager)
                    else:
                        callbacks.assign([customer], manager.id, day, owner)
                        db.session.flush()
                        callback = db.session.scalar(select(CallBack).where(
                            CallBack.customer_id == customer_id, CallBack.done_at.is_(None)))
                        callbacks.log_outcome(callback.id, "not_interested", manager, reason="price", inactive=True)
                    db.session.commit()
                except DBAPIError as error:
                    db.session.rollback()
                    self.observer_errors[type(error).__name__] += 1
                    continue
                self.stops[customer_id] = Stop(how, before, clock.now())
                done += 1
            db.session.remove()
        return done

    # the worker

    def worker_env(self) -> dict[str, str]:
        env = host_env(APP_ENV="testing", SECRET_KEY="faults", DATABASE_URL=self.database_url,
                       REDIS_URL=self.redis_url, INSTANCE_PATH=str(self.workdir / "instance"),
                       **{key: str(value) for key, value in self.knobs.items()})
        if self.skip_ca_store:
            env["SSL_CERT_FILE"] = env["SSL_CERT_DIR"] = str(self.workdir / "no-ca-store")
        return env

    def start_worker(self) -> None:
        with self.lock:
            self._start_worker()

    def _start_worker(self) -> None:
        self.worker = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=self.worker_env(),
                                       stdout=self.worker_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.starts += 1

    def worker_ready(self) -> bool:
        """Has the current worker registered with Redis (its imports and app are loaded)?"""
        if self.worker is None or self.worker.poll() is not None:
            return False
        try:
            connection = Redis.from_url(self.redis_url, socket_timeout=2)
            for key in connection.smembers("rq:workers"):
                if connection.hget(key, "pid") == str(self.worker.pid).encode():
                    return True
        except Exception:  # noqa: BLE001 (Redis away: not ready)
            return False
        return False

    def kill_worker(self) -> None:
        """SIGKILL the worker and everything it forked (the work horse sending right now, the
        scheduler), as a host that loses the machine would: nothing gets to finish or clean up."""
        with self.lock:
            self._kill_worker()

    def _kill_worker(self) -> None:
        if self.worker is None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(self.worker.pid)
            parent.suspend()  # no new fork between listing the children and killing them
            children = parent.children(recursive=True)
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.send_signal(signal.SIGKILL)
            parent.send_signal(signal.SIGKILL)
            psutil.wait_procs(children, timeout=10)
        self.worker.wait(10)
        self.worker = None
        self.kills += 1

    def stop_worker(self) -> None:
        """At the end: stop for good (no need to be gentle; whatever it left is repaired)."""
        if self.worker is not None:
            self.kill_worker()
            self.kills -= 1

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def close(self) -> None:
        self.stop_second_dispatcher()
        self.stop_worker()
        self.worker_log.close()
        with self.app.app_context():
            db.engine.dispose()

    # looking

    def states(self) -> Counter:
        """Message rows per state, and "due": running enrolments with a step still to make."""
        with self.app.app_context():
            found = Counter({MessageState(state).value: n for state, n in db.session.execute(
                select(Message.state, func.count()).group_by(Message.state))})
            found["due"] = db.session.scalar(select(func.count()).select_from(Enrolment).where(
                Enrolment.state == EnrolmentState.ACTIVE, Enrolment.next_step <= self.steps))
            db.session.remove()
            return found

    def settled(self) -> bool:
        """Every due step has its row and every row is in a final state."""
        now = self.states()
        return not now["due"] and not now["queued"] and not now["sending"]

    def rows(self) -> list:
        with self.app.app_context():
            rows = db.session.execute(select(Message.id, Message.enrolment_id, Message.customer_id, Message.step,
                                             Message.state, Message.reason, Message.recipient, Message.attempts,
                                             Message.queued_at, Message.sending_at)
                                      .order_by(Message.id)).all()
            db.session.remove()
            return rows

    def enrolments(self) -> dict[int, int]:
        with self.app.app_context():
            found = dict(db.session.execute(select(Enrolment.customer_id, Enrolment.id).where(
                Enrolment.sequence_id == self.sequence_id)).all())
            db.session.remove()
            return found

    def tally(self, expected: int | None = None) -> Tally:
        """Compare the message rows with what reached the sink (by default every customer's `steps`
        steps are due, but for those who answered or were moved to inactive: their steps after that
        moment are not, and must not reach the sink, except one already "sending" then)."""
        rows = self.rows()
        enrolment_of = self.enrolments()
        received = self.sink.received()
        with self.sink.lock:
            unanswered = Counter(self.sink.unanswered)
        result = Tally(expected=0, rows=len(rows))
        result.states = Counter(MessageState(row.state).value for row in rows)
        per_step = Counter((row.enrolment_id, row.step) for row in rows)
        for key, n in per_step.items():
            if n > 1:
                result.problems.append(f"{n} rows for enrolment {key[0]} step {key[1]}")
        by_customer: dict[int, list] = {}
        for row in rows:
            by_customer.setdefault(row.customer_id, []).append(row)
        stopped_due = 0
        for customer_id, stop in self.stops.items():
            mine = by_customer.get(customer_id, [])
            made = [row for row in mine if MessageState(row.state) is not MessageState.SKIPPED]
            stopped_due += len(made)
            result.stopped += 1
            result.stopped_steps += self.steps - len(made)
            for row in mine:
                if MessageState(row.state) is not MessageState.SKIPPED and aware(row.queued_at) > stop.after:
                    result.problems.append(f"message {row.id} was made after customer {customer_id} "
                                           f"{stop.how} (and not skipped)")
                for moment in received.get((row.enrolment_id, row.step), []):
                    if datetime.fromtimestamp(moment, UTC) <= stop.before:
                        continue
                    if row.sending_at is not None and aware(row.sending_at) <= stop.after:
                        result.after_inside += 1
                    else:
                        result.after_outside += 1
                        result.problems.append(f"message {row.id} reached customer {customer_id} after they "
                                               f"{'were moved to inactive' if stop.how == 'inactive' else 'answered'} "
                                               f"(handed over {row.sending_at}, the stop committed {stop.after})")
        result.expected = expected if expected is not None else (
            (len(self.customer_ids) - len(self.stops)) * self.steps + stopped_due)
        known = set()
        for row in rows:
            key = (row.enrolment_id, row.step)
            known.add(key)
            mails = len(received.get(key, []))
            state = MessageState(row.state)
            if mails > 1:
                result.duplicates += 1
                result.problems.append(f"message {row.id} ({state}) reached the sink {mails} times")
            if mails and state not in (MessageState.SENT, MessageState.UNCERTAIN):
                result.unflagged += 1
            if state is MessageState.SENT:
                if unanswered.get(key):
                    result.unflagged += 1
                    result.problems.append(f"message {row.id} is sent, but its one mail was never answered 250")
                if mails == 1:
                    result.delivered_once += 1
                elif mails == 0:
                    result.lost += 1
                    result.problems.append(f"message {row.id} is sent but never reached the sink")
            elif state is MessageState.UNCERTAIN:
                if mails == 0:
                    result.uncertain_unsent += 1
                else:
                    result.uncertain_sent += 1
                    result.unanswered += bool(unanswered.get(key))
            elif state is MessageState.FAILED:
                result.failed += 1
                if mails:
                    result.problems.append(f"message {row.id} is failed but reached the sink")
            elif state is MessageState.SKIPPED:
                result.skipped += 1
                if mails:
                    result.problems.append(f"message {row.id} is skipped but reached the sink")
            else:
                result.lost += 1
                result.problems.append(f"message {row.id} is still {state}")
        # Due steps without a row: every step of a customer still running (or of everyone, when the
        # caller says how many were due), none of a customer stopped mid-run.
        if expected is not None:
            missing = max(0, expected - len(per_step))
        else:
            made = Counter(row.customer_id for row in rows)
            missing = sum(max(0, self.steps - made[cid]) for cid in self.customer_ids if cid not in self.stops)
        if missing:
            result.lost += missing
            result.problems.append(f"{missing} due steps have no message row")
        known_enrolments = set(enrolment_of.values())
        for key, moments in received.items():
            if key not in known:
                result.orphans += len(moments)
                where = "a step never made" if key and key[0] in known_enrolments else "no enrolment"
                result.problems.append(f"{len(moments)} mails at the sink without a message row ({where}): {key}")
        return result


def address_of(customer_id: int) -> str:
    return f"customer{customer_id}@example.com"


def _looking(rig: Rig, look, default):
    """This script's own look at the database; when it meets a fault (the database restarting),
    counted and skipped: the next round looks again."""
    try:
        return look()
    except DBAPIError as error:
        rig.observer_errors[type(error).__name__] += 1
        return default


def run(rig: Rig, *, timeout: float, kill_every: tuple[float, float] | None = None, kill_after_mails: int = 0,
        events=(), rng: random.Random | None = None, hurry: bool = False, every: float = 1.0,
        report_every: float = 0.0, second_dispatcher: bool = False) -> bool:
    """Deliver until every row is final, playing the dispatcher every `every` seconds (and with
    `second_dispatcher`, a second one in a thread at the same time) and starting a worker whenever
    none runs. With `kill_every` (seconds, drawn uniformly, counted from the moment a worker is
    ready) the worker is killed and started again while due or queued messages remain; with
    `kill_after_mails` too, it is killed as soon as it has delivered that many (so a fast machine
    gets as many kills per message as a slow one). `events` are (mails at the sink, what to do) run
    once each when the sink has that many mails; `hurry` moves backoffs and the delays of later
    steps into the past (see Rig.hurry_backoff, Rig.hurry_steps). Return whether all settled."""
    rng = rng or random.Random()
    pending = sorted(events, key=lambda event: event[0])
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    # The current worker's death: a time, drawn once it is ready, or with `kill_after_mails` the sink's
    # count at which it dies. That one is done by the sink as the mail arrives (before its 250), not
    # by this loop's next look: a fast worker could otherwise send a whole batch in between.
    kill = SimpleNamespace(on=kill_every is not None, at=None, mails=None)

    def kill_on_mail(count: int) -> None:
        with rig.lock:
            if kill.on and kill.mails is not None and count >= kill.mails:
                kill.at = kill.mails = None
                rig.kill_worker()  # started again by the loop below

    if kill_after_mails:
        rig.sink.on_mail = kill_on_mail
    if second_dispatcher:
        rig.start_second_dispatcher(every)
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            with rig.lock:
                if not rig.worker_alive():
                    rig.start_worker()
                    kill.at = kill.mails = None
                if kill.on and kill.at is None and rig.worker_ready():
                    kill.at = now + rng.uniform(*kill_every)
                    kill.mails = len(rig.sink.mails) + kill_after_mails if kill_after_mails else None
                if kill.on and kill.at is not None and now >= kill.at:
                    rig.kill_worker()
                    rig.start_worker()
                    kill.at = kill.mails = None
            while pending and len(rig.sink.mails) >= pending[0][0]:
                pending.pop(0)[1]()
            if hurry:
                _looking(rig, rig.hurry_backoff, 0)
                _looking(rig, rig.hurry_steps, 0)
            rig.dispatch()
            states = _looking(rig, rig.states, None)
            if states is None:
                time.sleep(every)
                continue
            if report_every and now - last_report >= report_every:
                last_report = now
                rig.log(f"mails {len(rig.sink.mails):,}; rows {dict(sorted(states.items()))}; kills {rig.kills}")
            if not states["due"] and not states["queued"]:
                with rig.lock:
                    kill.on = False  # let the last "sending" rows finish, or turn uncertain
                if not states["sending"] and not pending:
                    return True
            time.sleep(every)
        return False
    finally:
        rig.sink.on_mail = None
        rig.stop_second_dispatcher()


def wait_until(rig: Rig, done, timeout: float, hurry: bool = False, every: float = 0.5) -> bool:
    """Dispatch every `every` seconds (starting a worker whenever none runs) until `done(rows)`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not rig.worker_alive():
            rig.start_worker()
        if hurry:
            rig.hurry_backoff()
        rig.dispatch()
        if done(rig.rows()):
            return True
        time.sleep(every)
    return False


# --- the full-size run -------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages due (customers x steps)")
    parser.add_argument("--steps", type=int, default=3, choices=(1, 2, 3), help="steps of the sequence due in the run")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throwaway PostgreSQL cluster of this script's own, stopped cold and "
                             "started again once mid-run")
    parser.add_argument("--database-url", help="an empty database of your own (PostgreSQL or SQLite; no restart: "
                                               "this script does not control that server)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"),
                        help="seconds between SIGKILLs of the worker, drawn uniformly (default 2 5)")
    parser.add_argument("--flaky", type=float, default=0.05, help="share of DATA commands refused with 451")
    parser.add_argument("--drop-before", type=float, default=0.03,
                        help="share of SMTP sessions cut before DATA (at RCPT)")
    parser.add_argument("--drop-after", type=float, default=0.01,
                        help="share of SMTP sessions cut after the whole message arrived, before its 250")
    parser.add_argument("--stop-share", type=float, default=0.02,
                        help="share of customers who answer (click, call), and again who are moved to inactive, "
                             "in each of two waves")
    parser.add_argument("--batch", type=int, default=25, help="SEND_BATCH: messages per send job")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600, help="give up after so many seconds")
    parser.add_argument("--ca-store", action="store_true",
                        help="let the worker load the CA store for every email as Apprise does (~40 ms of CPU each; "
                             "by default it is pointed at none: the sink speaks plain SMTP)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, database)")
    args = parser.parse_args(argv)
    if args.postgres and args.database_url:
        parser.error("--postgres makes its own database; leave out --database-url")

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="crm-faults-"))
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {text}", flush=True)

    cluster = PostgresCluster().start() if args.postgres else None
    database_url = cluster.database("faults") if cluster else (
        args.database_url or f"sqlite:///{workdir / 'crm.sqlite3'}")
    if database_url.startswith(("postgres://", "postgresql://")):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    redis_server = RedisProcess(workdir / "redis").start()
    sink = Sink(flaky=args.flaky, drop_before=args.drop_before, drop_after=args.drop_after,
                rng=random.Random(seed)).start()
    rig = Rig(workdir, database_url, redis_server.url, sink, batch=args.batch, skip_ca_store=not args.ca_store, log=log)
    customer_count = math.ceil(args.messages / args.steps)
    print(f"seed {seed}, working directory {workdir}, database {database_url.split('://')[0]}"
          f"{' (a cluster of its own: restarted once)' if cluster else ' (not restarted: not ours to control)'}",
          flush=True)
    pg_restarts = 0
    try:
        ids = rig.seed(customer_count, steps=args.steps)
        log(f"{customer_count:,} customers enrolled in a {args.steps}-step sequence "
            f"({customer_count * args.steps:,} messages due); worker starting")
        # Who answers or is moved to inactive mid-run: disjoint random sets, each its own wave.
        chosen = rng.sample(ids, min(len(ids), 4 * max(1, int(len(ids) * args.stop_share))))
        waves = [chosen[i::4] for i in range(4)]

        def restart_redis() -> None:
            log(f"Redis stopped at {len(sink.mails):,} mails")
            redis_server.stop()
            rig.dispatch()  # meets Redis away: its rows stay queued (stamped), repaired later
            time.sleep(rng.uniform(1, 3))
            redis_server.start()
            log("Redis started again, empty")

        def flush_redis() -> None:
            Redis.from_url(redis_server.url).flushall()
            log(f"Redis flushed (FLUSHALL) at {len(sink.mails):,} mails")

        def restart_postgres() -> None:
            nonlocal pg_restarts
            log(f"PostgreSQL stopped cold (immediate) at {len(sink.mails):,} mails")
            cluster.stop()
            time.sleep(rng.uniform(3, 6))  # the second dispatcher and the worker meet it away meanwhile
            cluster.resume()
            pg_restarts += 1
            log("PostgreSQL started again")

        def stopping(wave: list[int], how: str):
            def act() -> None:
                if how == "inactive":
                    done = rig.stop_customers(wave, "inactive")
                else:
                    half = len(wave) // 2
                    done = rig.stop_customers(wave[:half], "click") + rig.stop_customers(wave[half:], "call")
                log(f"{done} customers {'moved to inactive by a manager' if how == 'inactive' else 'answered'} "
                    f"at {len(sink.mails):,} mails")
            return act

        total = customer_count * args.steps
        events = [(int(total * 0.2), stopping(waves[0], "answer")), (int(total * 0.3), restart_redis),
                  (int(total * 0.35), stopping(waves[1], "inactive")), (int(total * 0.6), flush_redis),
                  (int(total * 0.65), stopping(waves[2], "answer")),
                  (int(total * 0.75), stopping(waves[3], "inactive"))]
        if cluster:
            events.append((int(total * 0.45), restart_postgres))
        settled = run(rig, timeout=args.timeout, kill_every=tuple(args.kill_every), events=events, rng=rng,
                      hurry=True, report_every=10, second_dispatcher=True)
        wall = time.monotonic() - started
        rig.stop_worker()
        result = rig.tally()
    finally:
        rig.close()
        sink.stop()
        redis_server.stop()
        if cluster:
            cluster.close()
    faults = sum(rig.dispatch_errors.values())
    by_kind = ", ".join(f"{name} {kind} {n}" for (name, kind), n in sorted(rig.dispatch_errors.items()))
    answered = sum(stop.how != "inactive" for stop in rig.stops.values())
    print()
    print(f"messages expected      {result.expected:>7,}  (due steps; {result.stopped_steps:,} steps of "
          f"{result.stopped} customers who answered ({answered}) or were moved to inactive "
          f"({result.stopped - answered}) were not due any more)")
    print(f"delivered exactly once {result.delivered_once:>7,}")
    print(f"duplicates             {result.duplicates:>7,}")
    print(f"uncertain              {result.uncertain:>7,}  ({result.uncertain_sent} reached the sink, "
          f"{result.uncertain_unsent} did not; {result.unanswered} of them cut by the sink after DATA)")
    print(f"unflagged (a mail at the sink, row neither sent nor uncertain) {result.unflagged:,}")
    print(f"failed                 {result.failed:>7,}")
    print(f"skipped                {result.skipped:>7,}  (answered or inactive)")
    print(f"lost                   {result.lost:>7,}")
    print(f"mails without a row    {result.orphans:>7,}")
    print(f"sent after an answer or the inactive list: {result.after_outside} outside the window, "
          f"{result.after_inside} inside (already sending at that moment)")
    print(f"worker kills {rig.kills}, worker starts {rig.starts}; Redis restarted once and flushed once; "
          f"PostgreSQL restarts {pg_restarts}{'' if cluster else ' (not our server)'}")
    print(f"dispatch passes {dict(rig.dispatch_runs)}, of which met a fault {faults}"
          f"{f' ({by_kind})' if by_kind else ''}; this script's own looks that met a fault "
          f"{sum(rig.observer_errors.values())}")
    print(f"SMTP: 451 answers {sink.refusals['refused_data']}, sessions dropped before DATA "
          f"{sink.refusals['dropped_before_data']}, dropped after DATA (before 250) "
          f"{sink.refusals['dropped_after_data']}")
    print(f"send jobs enqueued by this process's dispatch passes {rig.passes['jobs']:,} (messages enqueued again "
          f"{rig.passes['requeued']:,}, marked uncertain {rig.passes['uncertain']:,})")
    print(f"wall time {wall:.1f}s{'' if settled else ' (timed out before every row was final)'}")
    for problem in result.problems[:20]:
        print("PROBLEM:", problem)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = settled and result.ok
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
