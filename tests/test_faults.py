"""Nothing lost, nothing doubled: sequence messages through the real worker under faults.

Each test runs the real worker entry (`python worker.py`, RQ on a real redis-server) against a SQLite
file (or PostgreSQL), an SMTP sink on loopback, and plays the per-minute dispatcher itself
(`crm.dispatch.run_due`, which also repairs: it enqueues again what lost its job and marks "uncertain"
what a killed worker left "sending"). Then it compares every message row with what the sink received,
by Message-ID (`<crm-{enrolment}-{step}@host>`):

- sent: exactly one mail; uncertain: none or one (the worker died mid-send, or the SMTP connection
  dropped after the whole message went out: never sent again); failed: none; no mail without a row;
  no row left queued or sending; no Message-ID twice;
- a customer who answered (a click, a call) or was moved to inactive by a manager gets nothing after
  that moment but a message already "sending" then, and no later step.

Timings are shrunk through the environment the worker reads: a queued message whose job was lost is
enqueued again after 2 s (SEND_REQUEUE_AFTER), a message left "sending" is uncertain after 5 s
(SEND_UNCERTAIN_AFTER), jobs carry 25 messages (SEND_BATCH). bench/faults.py runs the same at 10,000
messages with every fault at once (PostgreSQL restarted too); the harness (Rig, Sink,
PostgresCluster, run, tally) lives there.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, timedelta

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from bench import faults
from crm import clock, delivery, dispatch
from crm.extensions import db
from crm.models import Contact, Customer, Enrolment, EnrolmentState, Message, MessageState, Status
from tests import servers

SENT, UNCERTAIN, FAILED = MessageState.SENT, MessageState.UNCERTAIN, MessageState.FAILED


@pytest.fixture
def sink():
    sink = faults.Sink().start()
    yield sink
    sink.stop()


def make_rig(tmp_path, redis_url, sink, database_url=None, uncertain_after: int = 5) -> faults.Rig:
    Redis.from_url(redis_url).flushall()
    # The sink speaks plain SMTP on loopback: the worker skips loading the CA store Apprise reads
    # for every email (see Rig), which would otherwise be most of the CPU a send costs.
    return faults.Rig(tmp_path, database_url or f"sqlite:///{tmp_path / 'crm.sqlite3'}", redis_url, sink,
                      batch=25, requeue_after=2, uncertain_after=uncertain_after, skip_ca_store=True, log=print)


@pytest.fixture
def rig(tmp_path, redis_url, sink):
    rig = make_rig(tmp_path, redis_url, sink)
    yield rig
    rig.close()
    Redis.from_url(redis_url).flushall()  # no dead workers' registrations left for later tests


def assert_exactly_once(result: faults.Tally, allow=(SENT, UNCERTAIN)) -> None:
    """Every due step has one row, final; sent rows have one mail, uncertain ones at most one."""
    assert result.problems == [], result.problems[:10]
    assert set(result.states) <= {state.value for state in allow}, result.states
    assert result.rows == result.expected
    assert result.duplicates == 0 and result.orphans == 0 and result.lost == 0
    assert result.delivered_once + result.uncertain + result.failed == result.expected


def kill_through_a_run(rig: faults.Rig, messages: int, timeout: float, kill_after_mails: int = 40) -> faults.Tally:
    rig.seed(messages)
    # Killed 1-2 s after it is ready, or once it has delivered so many mails, whichever comes first: a
    # fast machine gets as many kills per message as a slow one.
    settled = faults.run(rig, timeout=timeout, kill_every=(1.0, 2.0), kill_after_mails=kill_after_mails,
                         rng=random.Random(1), every=0.5, report_every=5)
    rig.stop_worker()
    assert settled, f"not settled in {timeout}s: {rig.states()}"
    result = rig.tally(messages)
    print(result.line(), f"worker kills {rig.kills}")
    return result


def assert_uncertain_only_on_the_wire(result: faults.Tally, rig: faults.Rig) -> None:
    """Only messages on the wire when the worker died may be uncertain: at most as many per kill as
    the worker sends at once; the rest of its batch is still queued and goes out later."""
    assert result.uncertain <= rig.kills * rig.knobs["SEND_CONCURRENCY"], (result.line(), rig.kills)


def test_a_worker_killed_again_and_again_neither_loses_nor_doubles_a_message(rig):
    result = kill_through_a_run(rig, 400, timeout=100)
    assert rig.kills >= 5, "the run was too short to kill the worker mid-way"
    assert_exactly_once(result)
    assert_uncertain_only_on_the_wire(result, rig)
    assert rig.dispatch_errors == {}


def test_a_flushed_redis_loses_nothing_the_dispatcher_enqueues_again(rig, redis_url):
    messages = 200
    rig.seed(messages)
    seen = {}

    def flush() -> None:
        seen.update(rig.states())
        Redis.from_url(redis_url).flushall()  # queued jobs, the retry schedule, the workers' keys: gone

    settled = faults.run(rig, timeout=90, events=[(messages // 4, flush)], every=0.5)
    rig.stop_worker()
    assert settled, rig.states()
    assert seen["queued"] > 0, "the flush came too late to lose any job"
    result = rig.tally(messages)
    assert_exactly_once(result, allow=(SENT,))  # nobody was killed: nothing uncertain
    assert result.delivered_once == messages


def wait_for(rig, done, what: str, timeout: float = 40) -> list:
    assert faults.wait_until(rig, done, timeout), f"{what}: {rig.states()}"
    return rig.rows()


def test_smtp_down_then_refusing_retries_the_passing_faults_and_never_the_permanent_ones(rig, sink):
    """The sink starts down (connection refused), then answers 451 to DATA, then 421, then takes
    everything; every tenth address is refused at RCPT with 550 throughout. Backoffs are minutes
    (crm.delivery.BACKOFF): instead of waiting, each round moves not_before of the messages waiting for
    their next try into the past (Rig.hurry_backoff), which is what the wait would come to."""
    messages = 60
    ids = rig.seed(messages, bounce_every=10)
    bounced = {faults.address_of(cid) for cid in ids[::10]}
    sink.stop()  # down before anything is sent

    def tried(attempts: int, first: bool = False):
        """Every message tried `attempts` times and waiting for the next try; the bounces failed."""
        def done(rows) -> bool:
            return len(rows) == messages and all(
                r.state == MessageState.QUEUED and r.attempts == attempts if first or r.recipient not in bounced
                else r.state == FAILED for r in rows)
        return done

    rows = wait_for(rig, tried(1, first=True), "every message tried once against a server that is down")
    assert not sink.mails
    assert {r.reason for r in rows} == {"retrying"}
    with rig.app.app_context():
        waiting = db.session.scalars(select(Message.not_before)).all()
        soonest = min(moment.replace(tzinfo=UTC) for moment in waiting)  # SQLite gives them back naive
        assert soonest > clock.now() + timedelta(seconds=30)  # backing off: minutes
    rig.dispatch()
    assert faults.wait_until(rig, lambda rows: False, 3) is False  # nothing is tried before its time
    assert {r.attempts for r in rig.rows()} == {1}

    sink.refuse_data = "451 4.3.0 Try again later"
    sink.start()
    rig.hurry_backoff()
    rows = wait_for(rig, tried(2), "451: tried again, bounces failed")
    assert not sink.mails
    assert {r.recipient for r in rows if r.state == FAILED} == bounced
    assert {(r.reason, r.attempts) for r in rows if r.state == FAILED} == {("refused", 2)}

    sink.refuse_data = "421 4.7.0 Service not available, closing transmission channel"
    rig.hurry_backoff()
    wait_for(rig, tried(3), "421: tried again")
    assert not sink.mails

    sink.refuse_data = None
    rig.hurry_backoff()
    rows = wait_for(rig, lambda rows: all(r.state in (SENT, FAILED) for r in rows), "delivered")
    rig.stop_worker()
    result = rig.tally(messages)
    assert_exactly_once(result, allow=(SENT, FAILED))
    assert result.delivered_once == messages - len(bounced) and result.failed == len(bounced)
    # The permanent refusals were never tried again; the rest took four tries (down, 451, 421, taken).
    assert {r.attempts for r in rows if r.state == FAILED} == {2}
    assert {r.attempts for r in rows if r.state == SENT} == {4}
    assert not any(address in bounced for mail in sink.mails for address in mail.recipients)
    with rig.app.app_context():
        invalid = set(db.session.scalars(select(Contact.value).where(Contact.invalid.is_(True))))
        assert invalid == bounced  # a hard bounce: the address is never used again
        # Their only address bounced: nothing left to reach them on, so they went to the inactive list.
        statuses = db.session.execute(select(Customer.status, func.count()).join(Contact)
                                      .where(Contact.value.in_(bounced)).group_by(Customer.status)).all()
        assert statuses == [(Status.INACTIVE, len(bounced))]


def two_dispatchers_at_once(rig: faults.Rig, messages: int) -> None:
    rig.seed(messages)
    start = threading.Barrier(2)
    reports, errors = [], []

    def dispatcher() -> None:
        with rig.app.app_context():
            try:
                start.wait()
                reports.append(dispatch.run_due())
            except Exception as error:  # noqa: BLE001 (shown by the assertion below)
                errors.append(repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with rig.app.app_context():
        per_step = db.session.execute(select(Message.enrolment_id, Message.step, func.count())
                                      .group_by(Message.enrolment_id, Message.step)).all()
        assert len(per_step) == messages and {n for _, _, n in per_step} == {1}
        assert set(db.session.scalars(select(Enrolment.next_step))) == {2}
        message_ids = set(db.session.scalars(select(Message.id)))
        assert set(db.session.scalars(select(Message.state))) == {MessageState.QUEUED}
    assert sum(report.queued for report in reports) == messages  # each step queued by one of them
    queue = Queue("default", connection=Redis.from_url(rig.redis_url))
    enqueued = {ident for job in queue.get_jobs() for ident in job.args[0]}
    assert enqueued == message_ids  # every message has a send job (some may have two: harmless)


def test_two_dispatchers_at_once_make_one_message_per_step(rig):
    two_dispatchers_at_once(rig, 1000)


# --- the same on PostgreSQL ------------------------------------------------------------------------

@pytest.fixture
def pg_rig(tmp_path, redis_url, sink, postgres_admin_url):
    import uuid

    url = servers.create_database(postgres_admin_url, f"crm_{uuid.uuid4().hex[:10]}")
    rig = make_rig(tmp_path, redis_url, sink, url.replace("postgresql://", "postgresql+psycopg://"))
    yield rig
    rig.close()
    Redis.from_url(redis_url).flushall()


@pytest.mark.postgres
def test_on_postgres_a_worker_killed_again_and_again_neither_loses_nor_doubles(pg_rig):
    result = kill_through_a_run(pg_rig, 150, timeout=60, kill_after_mails=15)
    assert pg_rig.kills >= 3
    assert_exactly_once(result)
    assert_uncertain_only_on_the_wire(result, pg_rig)


@pytest.mark.postgres
def test_on_postgres_two_dispatchers_at_once_make_one_message_per_step(pg_rig):
    two_dispatchers_at_once(pg_rig, 1000)


# --- SMTP connections dropped, customers who answer or leave, PostgreSQL restarted -------------------

def test_smtp_sessions_cut_before_data_are_retried_and_after_data_are_uncertain_never_resent(tmp_path, redis_url):
    """The sink cuts a share of sessions at RCPT (nothing was handed over: tried again, delivered
    once) and a share right after the whole message arrived, before its 250 (the server may have
    taken it: the row ends uncertain, "unanswered", and is never sent a second time)."""
    sink = faults.Sink(drop_before=0.15, drop_after=0.15, rng=random.Random(3)).start()
    # No worker is killed here, so no row needs repairing: a send still on the wire after 5 s on a slow
    # machine must not be taken for a dead worker's (it would be uncertain for another reason).
    rig = make_rig(tmp_path, redis_url, sink, uncertain_after=120)
    try:
        messages = 100
        rig.seed(messages)
        settled = faults.run(rig, timeout=60, hurry=True, every=0.5, second_dispatcher=True)
        rig.stop_worker()
        assert settled, rig.states()
        result = rig.tally(messages)
        print(result.line(), dict(sink.refusals))
        assert sink.refusals["dropped_before_data"] >= 3 and sink.refusals["dropped_after_data"] >= 3
        assert_exactly_once(result)
        assert result.unflagged == 0
        # Nobody was killed: the only uncertain rows are the ones cut after DATA, and each of them is.
        assert result.uncertain == result.uncertain_sent == result.unanswered == sink.refusals["dropped_after_data"]
        rows = rig.rows()
        assert {r.reason for r in rows if r.state == UNCERTAIN} == {"unanswered"}
        assert max(r.attempts for r in rows if r.state == SENT) >= 2  # a cut before DATA: tried again
    finally:
        rig.close()
        sink.stop()
        Redis.from_url(redis_url).flushall()


def test_customers_who_answer_or_are_moved_to_inactive_get_nothing_after(rig, sink):
    """A 3-step sequence; mid-run some customers click the tracked link, some pick up a manager's
    call, and a manager moves others to the inactive list after a call. Nothing reaches them after
    that moment but a message already on the wire then, and their later steps are not sent."""
    sink.flaky = 0.05
    ids = rig.seed(45, steps=3)
    chosen = random.Random(5).sample(ids, 24)
    events = [(30, lambda: rig.stop_customers(chosen[:8], "click")),
              (45, lambda: rig.stop_customers(chosen[8:16], "call")),
              (60, lambda: rig.stop_customers(chosen[16:], "inactive"))]
    settled = faults.run(rig, timeout=60, events=events, hurry=True, every=0.5, second_dispatcher=True)
    rig.stop_worker()
    assert settled, rig.states()
    result = rig.tally()
    print(result.line())
    assert len(rig.stops) == 24 and result.stopped_steps > 10
    assert result.problems == [], result.problems[:10]
    assert result.duplicates == result.orphans == result.lost == result.unflagged == result.after_outside == 0
    assert result.delivered_once + result.uncertain == result.expected == result.rows - result.skipped
    with rig.app.app_context():
        states = dict(db.session.execute(select(Enrolment.customer_id, Enrolment.state)).all())
        statuses = dict(db.session.execute(select(Customer.id, Customer.status)).all())
    assert {states[cid] for cid in chosen[:16]} == {EnrolmentState.RESPONDED}
    assert {statuses[cid] for cid in chosen[16:]} == {Status.INACTIVE}
    assert {states[cid] for cid in set(ids) - set(chosen)} == {EnrolmentState.ACTIVE}  # the grace period runs


def test_a_message_prepared_before_a_manager_moves_its_customer_to_inactive_is_not_handed_over(rig, sink,
                                                                                                  monkeypatch):
    """A send job re-checks the customer, then hands messages over as threads free up: a manager
    who moves the customer to the inactive list in between (a call logged as not interested, which
    leaves the enrolment to the dispatcher) must still win; only a message already "sending" at
    that moment may go out."""
    ids = rig.seed(3)
    original, moved = delivery._hand_over, []

    def hand_over(message_ids, lease):
        if not moved:  # the manager's decision commits from another session meanwhile
            thread = threading.Thread(target=lambda: moved.append(rig.stop_customers([ids[0]], "inactive")))
            thread.start()
            thread.join()
        return original(message_ids, lease)

    monkeypatch.setattr(delivery, "_hand_over", hand_over)
    with rig.app.app_context():
        report = dispatch.run_due(send=False)
        delivery.send_batch(report.message_ids)
        db.session.remove()
    assert moved == [1]
    assert sorted(mail.recipients for mail in sink.mails) == [[faults.address_of(cid)] for cid in ids[1:]]
    rig.dispatch()  # the lease runs out: the next send job skips it, saying why
    assert faults.wait_until(rig, lambda rows: all(r.state != MessageState.QUEUED for r in rows), 20)
    by_customer = {r.customer_id: r for r in rig.rows()}
    assert (by_customer[ids[0]].state, by_customer[ids[0]].reason) == (MessageState.SKIPPED, "inactive")
    assert len(sink.mails) == 2


@pytest.mark.postgres
def test_on_postgres_a_server_restarted_mid_run_loses_and_doubles_nothing(tmp_path, redis_url, monkeypatch):
    """PostgreSQL stopped cold (every connection cut) and started again while two dispatchers run and
    the worker sends: passes that meet it fail and are tried again, jobs that meet it are repaired;
    every due message is still sent once or flagged uncertain. (The worker killed on PostgreSQL:
    test_on_postgres_a_worker_killed_again_and_again_neither_loses_nor_doubles.)"""
    # It stops and starts the server, so it always runs a throwaway cluster of its own, even when the
    # other tests use the database TEST_POSTGRES_URL names.
    monkeypatch.delenv("TEST_POSTGRES_URL", raising=False)
    cluster = faults.PostgresCluster().start()
    sink = faults.Sink(flaky=0.05, drop_before=0.05, drop_after=0.02, rng=random.Random(9)).start()
    rig = make_rig(tmp_path, redis_url, sink, cluster.database("faults"))
    restarted = []

    def restart() -> None:
        cluster.stop()
        time.sleep(2)
        cluster.resume()
        restarted.append(len(sink.mails))

    try:
        rig.seed(50, steps=3)
        settled = faults.run(rig, timeout=90, events=[(60, restart)], hurry=True, every=0.5,
                             second_dispatcher=True, report_every=5)
        rig.stop_worker()
        assert settled, rig.states()
        result = rig.tally()
        print(result.line(), dict(rig.dispatch_errors), restarted)
        assert restarted and rig.dispatch_errors, "no pass met the server away"
        assert_exactly_once(result)
        assert result.unflagged == 0
    finally:
        rig.close()
        sink.stop()
        cluster.close()
        Redis.from_url(redis_url).flushall()
