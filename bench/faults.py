"""Nothing lost, nothing doubled: sequence messages through real faults, counted at the receiving end.

A due one-step sequence for N customers (email, consent given) goes out through the real worker
(`python worker.py`, RQ on a real redis-server) to an SMTP sink on loopback, while this process plays
the per-minute dispatcher (`crm.dispatch.run_due`, every second or so, which also repairs: it enqueues
again what lost its job, and marks "uncertain" what a killed worker left "sending"). Meanwhile:

- the worker (its work horse and scheduler too, as a dying host takes them) is killed with SIGKILL at
  random every few seconds and started again;
- Redis is stopped and started on the same port once, and flushed (FLUSHALL) once;
- the SMTP sink answers a random share of DATA commands with 451 (try again later).

Passing failures back off for minutes (crm.delivery.BACKOFF); to keep the run short this script moves
`not_before` of messages waiting for their next try into the past (the same as waiting it out).

At the end, with every message row in a final state, it compares the rows with what the sink got,
by Message-ID (`<crm-{enrolment}-{step}@host>`), and prints: expected, delivered once, duplicates,
uncertain (with and without a mail at the sink), failed, lost, and the wall time:

    .venv/bin/python bench/faults.py                      # 10,000 messages, SQLite file
    .venv/bin/python bench/faults.py --messages 2000 --database-url postgresql://crm@127.0.0.1:5433/faults

The harness (`Rig`, `Sink`, `tally`) is what tests/test_faults.py drives at a smaller size.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("APP_ENV", "testing")  # before the app is imported, as tests/conftest.py does

import psutil
from aiosmtpd.controller import Controller
from redis import Redis
from sqlalchemy import func, insert, select, update

from crm import clock, create_app, dispatch, enrolment, sequences, settings
from crm.extensions import db
from crm.models import (
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
from tests.runtime import host_env
from tests.servers import free_port, wait_for_port
from tests.sinks import Mail, SmtpSink

MESSAGE_ID = re.compile(r"<crm-(\d+)-(\d+)@")


# --- the receiving end ---------------------------------------------------------------------------

class _Handler:
    """tests.sinks' SMTP handler, plus refusals per recipient (550 at RCPT) and a random share of
    DATA commands answered 451."""

    def __init__(self, sink: Sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        sink = self.sink
        if sink.refuse_rcpt:
            return sink.refuse_rcpt
        if address in sink.bounce:
            sink.count("bounced")
            return "550 5.1.1 No such user"
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
        with sink.lock:
            sink.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                                   email.message_from_bytes(envelope.content)))
            count = len(sink.mails)
        if sink.on_mail is not None:
            sink.on_mail(count)  # before the 250: a worker killed here dies with this mail on the wire
        return "250 Message accepted for delivery"


@dataclass
class Sink(SmtpSink):
    """tests.sinks.SmtpSink with `bounce` (addresses refused with 550 at RCPT), `flaky` (the share
    of DATA commands refused with 451) and `on_mail` (a hook run as each mail arrives); counts its
    refusals in `refusals`."""

    bounce: set[str] = field(default_factory=set)
    flaky: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    refusals: Counter = field(default_factory=Counter)
    on_mail: Callable[[int], None] | None = None  # called with the count of mails, before answering 250

    def start(self) -> Sink:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def count(self, what: str) -> None:
        with self.lock:
            self.refusals[what] += 1

    def message_ids(self) -> Counter:
        """How many mails arrived per (enrolment id, step), and mails without a CRM Message-ID (key None)."""
        with self.lock:
            mails = list(self.mails)
        found = Counter()
        for mail in mails:
            match = MESSAGE_ID.search(mail.message_id or "")
            found[(int(match[1]), int(match[2])) if match else None] += 1
        return found


# --- Redis that can be stopped and started on its port ---------------------------------------------

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


# --- the rig: database, dispatcher (this process) and worker (a subprocess) -------------------------

@dataclass
class Tally:
    expected: int  # due steps: one message each
    rows: int = 0
    delivered_once: int = 0  # sent, and exactly one mail at the sink
    duplicates: int = 0  # rows whose Message-ID reached the sink more than once
    uncertain_sent: int = 0  # uncertain, and the sink has its one mail
    uncertain_unsent: int = 0  # uncertain, and nothing reached the sink
    failed: int = 0  # refused for good (or gave up), nothing at the sink
    skipped: int = 0
    lost: int = 0  # due steps without a row, rows "sent" without a mail, rows still queued/sending
    orphans: int = 0  # mails at the sink without a message row
    states: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def uncertain(self) -> int:
        return self.uncertain_sent + self.uncertain_unsent

    def line(self) -> str:
        return (f"expected {self.expected:,}  delivered once {self.delivered_once:,}  duplicates {self.duplicates}  "
                f"uncertain {self.uncertain} ({self.uncertain_sent} reached the sink, {self.uncertain_unsent} did "
                f"not)  failed {self.failed}  skipped {self.skipped}  lost {self.lost}  orphan mails {self.orphans}")


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
        self.dispatch_errors: Counter = Counter()
        self.passes: Counter = Counter()  # what this process's dispatch passes did: jobs, requeued, uncertain
        self.sequence_id: int | None = None

    # the data

    def seed(self, count: int, bounce_every: int = 0) -> list[int]:
        """Make the schema, the email channel pointing at the sink, `count` customers with an email
        address and consent (set-based), a sequence whose first step is due now, and enrol them all.
        With `bounce_every`, every so many customers' addresses are refused by the sink with 550."""
        with self.app.app_context():
            db.create_all()
            owner = User(email="owner@example.com", name="Owner", password_hash="-", role=Role.OWNER)
            db.session.add(owner)
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
            for step in sequence.steps:
                step.channel = StepChannel.EMAIL
                if step.position > 1:
                    step.delay_days = 365  # only the first step falls due during the run
            db.session.flush()
            report = enrolment.enrol(sequence, ids, "faults", None, now=now - timedelta(seconds=1))
            assert report.enrolled == count, report
            self.sequence_id = sequence.id
            db.session.commit()
        if bounce_every:
            self.sink.bounce |= {address_of(cid) for cid in ids[::bounce_every]}
        return ids

    # the dispatcher

    def dispatch(self) -> dispatch.Pass | None:
        """One pass of the dispatcher (with repair), as the worker's clock runs it every minute; a
        pass that meets a fault (Redis away, the database busy) is counted and tried next time."""
        with self.app.app_context():
            try:
                report = dispatch.run_due()
                self.passes.update(jobs=report.jobs, requeued=report.requeued, uncertain=report.uncertain)
                return report
            except Exception as error:  # noqa: BLE001 (counted and shown; the next pass tries again)
                db.session.rollback()
                self.dispatch_errors[type(error).__name__] += 1
                self.log(f"dispatch: {type(error).__name__}: {str(error)[:200]}")
                return None
            finally:
                db.session.remove()

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
        self.stop_worker()
        self.worker_log.close()
        with self.app.app_context():
            db.engine.dispose()

    # looking

    def states(self) -> Counter:
        with self.app.app_context():
            found = Counter({MessageState(state).value: n for state, n in db.session.execute(
                select(Message.state, func.count()).group_by(Message.state))})
            found["due"] = db.session.scalar(select(func.count()).select_from(Enrolment).where(
                Enrolment.state == EnrolmentState.ACTIVE, Enrolment.next_step == 1))
            db.session.remove()
            return found

    def settled(self) -> bool:
        """Every due step has its row and every row is in a final state."""
        now = self.states()
        return not now["due"] and not now["queued"] and not now["sending"]

    def rows(self) -> list:
        with self.app.app_context():
            rows = db.session.execute(select(Message.id, Message.enrolment_id, Message.step, Message.state,
                                             Message.reason, Message.recipient, Message.attempts)
                                      .order_by(Message.id)).all()
            db.session.remove()
            return rows

    def tally(self, expected: int) -> Tally:
        """Compare the message rows with what reached the sink."""
        rows = self.rows()
        received = self.sink.message_ids()
        result = Tally(expected=expected, rows=len(rows))
        result.states = Counter(MessageState(row.state).value for row in rows)
        known = set()
        per_enrolment = Counter((row.enrolment_id, row.step) for row in rows)
        for key, n in per_enrolment.items():
            if n > 1:
                result.problems.append(f"{n} rows for enrolment {key[0]} step {key[1]}")
        for row in rows:
            key = (row.enrolment_id, row.step)
            known.add(key)
            mails = received.get(key, 0)
            state = MessageState(row.state)
            if mails > 1:
                result.duplicates += 1
                result.problems.append(f"message {row.id} ({state}) reached the sink {mails} times")
            if state is MessageState.SENT:
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
        result.lost += max(0, expected - len(per_enrolment))
        if expected > len(per_enrolment):
            result.problems.append(f"{expected - len(per_enrolment)} due steps have no message row")
        for key, n in received.items():
            if key not in known:
                result.orphans += n
                result.problems.append(f"{n} mails at the sink without a message row: {key}")
        return result


def address_of(customer_id: int) -> str:
    return f"customer{customer_id}@example.com"


def run(rig: Rig, *, timeout: float, kill_every: tuple[float, float] | None = None, kill_after_mails: int = 0,
        events=(), rng: random.Random | None = None, hurry: bool = False, every: float = 1.0,
        report_every: float = 0.0) -> bool:
    """Deliver until every row is final, playing the dispatcher every `every` seconds and starting a
    worker whenever none runs. With `kill_every` (seconds, drawn uniformly, counted from the moment
    a worker is ready) the worker is killed and started again while due or queued messages remain;
    with `kill_after_mails` too, it is killed as soon as it has delivered that many (so a fast machine
    gets as many kills per message as a slow one). `events` are (mails at the sink, what to do) run
    once each when the sink has that many mails; `hurry` moves backoffs into the past (see
    Rig.hurry_backoff). Return whether all settled."""
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
                rig.hurry_backoff()
            rig.dispatch()
            states = rig.states()
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
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a fresh SQLite file)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"),
                        help="seconds between SIGKILLs of the worker, drawn uniformly (default 2 5)")
    parser.add_argument("--flaky", type=float, default=0.05, help="share of DATA commands refused with 451")
    parser.add_argument("--batch", type=int, default=25, help="SEND_BATCH: messages per send job")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600, help="give up after so many seconds")
    parser.add_argument("--ca-store", action="store_true",
                        help="let the worker load the CA store for every email as Apprise does (~40 ms of CPU each; "
                             "by default it is pointed at none: the sink speaks plain SMTP)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, database)")
    args = parser.parse_args(argv)

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="crm-faults-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'crm.sqlite3'}"
    if database_url.startswith(("postgres://", "postgresql://")):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {text}", flush=True)

    redis_server = RedisProcess(workdir / "redis").start()
    sink = Sink(flaky=args.flaky, rng=random.Random(seed)).start()
    rig = Rig(workdir, database_url, redis_server.url, sink, batch=args.batch, skip_ca_store=not args.ca_store, log=log)
    print(f"seed {seed}, working directory {workdir}", flush=True)
    try:
        rig.seed(args.messages)
        log(f"{args.messages:,} customers enrolled; worker starting")

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

        events = [(int(args.messages * 0.3), restart_redis), (int(args.messages * 0.6), flush_redis)]
        settled = run(rig, timeout=args.timeout, kill_every=tuple(args.kill_every), events=events, rng=rng,
                      hurry=True, report_every=10)
        wall = time.monotonic() - started
        rig.stop_worker()
        result = rig.tally(args.messages)
    finally:
        rig.close()
        sink.stop()
        redis_server.stop()
    print()
    print(f"messages expected      {result.expected:>7,}")
    print(f"delivered exactly once {result.delivered_once:>7,}")
    print(f"duplicates             {result.duplicates:>7,}")
    print(f"uncertain              {result.uncertain:>7,}  ({result.uncertain_sent} reached the sink, "
          f"{result.uncertain_unsent} did not)")
    print(f"failed                 {result.failed:>7,}")
    print(f"lost                   {result.lost:>7,}")
    print(f"mails without a row    {result.orphans:>7,}")
    print(f"worker kills {rig.kills}, worker starts {rig.starts}, Redis restarted once and flushed once, "
          f"451 answers {sink.refusals['refused_data']}, dispatch passes that met a fault "
          f"{dict(rig.dispatch_errors) or 0}")
    print(f"send jobs enqueued by this process's dispatch passes {rig.passes['jobs']:,} (messages enqueued again "
          f"{rig.passes['requeued']:,}, marked uncertain {rig.passes['uncertain']:,})")
    print(f"wall time {wall:.1f}s{'' if settled else ' (timed out before every row was final)'}")
    for problem in result.problems[:20]:
        print("PROBLEM:", problem)
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    ok = not result.problems and result.delivered_once + result.uncertain + result.failed == result.expected
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
