"""The dispatcher: turns due steps of running enrolments into message rows and send jobs.

The worker's clock runs `run_due` every minute (and `flask sequences run-due --now` runs it as of
any moment). Each pass:
1. claims due enrolments in batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two dispatchers
   take different rows; on SQLite the single writer and a conditional UPDATE do the same) and, per
   enrolment, stops it, defers it to its send window, finishes it (no answer: inactive list), or
   writes the step's message, queued or skipped with the reason, under the one-row-per-(enrolment,
   step) constraint, and moves the enrolment to its next step;
2. after the commit, enqueues send jobs carrying batches of message ids;
3. repairs what a crash or a lost Redis left: messages still queued long after their job was
   enqueued, when no job waits on the queue any more, get a new job; messages left "sending" by a
   killed worker become "uncertain" (they may have reached the provider, so they are never sent
   again without a person deciding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from rq import Retry
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import selectinload

from crm import channels, clock, customers, eligibility, enrolment, inactive, settings, workdays
from crm.extensions import db, redis
from crm.models import Customer, Enrolment, EnrolmentState, Kind, Message, MessageState, Sequence, Status
from crm.settings import Messaging

BATCH = 500
# RQ retries a send job that met passing failures; the message rows carry the same backoff.
RETRY_INTERVALS = [60, 300, 900]


@dataclass
class Pass:
    queued: int = 0
    skipped: int = 0
    deferred: int = 0
    stopped: int = 0
    finished: int = 0
    requeued: int = 0
    uncertain: int = 0
    jobs: int = 0
    message_ids: list[int] = field(default_factory=list)


def zone_of(customer: Customer) -> ZoneInfo:
    if customer.timezone:
        try:
            return ZoneInfo(customer.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return workdays.zone()


def within_window(sequence: Sequence, moment: datetime, zone: ZoneInfo) -> bool:
    local = moment.astimezone(zone)
    return local.isoweekday() in sequence.weekdays and sequence.window_start <= local.hour < sequence.window_end


def next_opening(sequence: Sequence, moment: datetime, zone: ZoneInfo) -> datetime:
    """The next moment the send window is open, in the customer's local time (across DST changes:
    the wall-clock hour is what counts)."""
    local = moment.astimezone(zone)
    for offset in range(0, 8):
        day = local.date() + timedelta(days=offset)
        if day.isoweekday() not in sequence.weekdays:
            continue
        opens = datetime.combine(day, time(sequence.window_start), tzinfo=zone)
        if offset == 0 and local.hour >= sequence.window_end:
            continue
        return max(opens, local).astimezone(UTC) if offset == 0 else opens.astimezone(UTC)
    return (moment + timedelta(days=1)).astimezone(UTC)  # no weekday allowed: refused on save, but never stall


def _after(sequence: Sequence, step: int, moment: datetime) -> datetime:
    """When the step after `step` falls due: its delay, or the grace period after the last step."""
    following = sequence.step(step + 1)
    if following is None:
        return moment + timedelta(days=sequence.grace_days)
    return moment + timedelta(days=following.delay_days, hours=following.delay_hours)


def _move(row: Enrolment, step: int, next_at: datetime, next_step: int | None = None) -> bool:
    """Advance an enrolment from `step`, only if nobody else did meanwhile (the claim)."""
    return db.session.execute(
        update(Enrolment).where(Enrolment.id == row.id, Enrolment.state == EnrolmentState.ACTIVE,
                                Enrolment.next_step == step)
        .values(next_step=next_step or step, next_at=next_at).execution_options(synchronize_session=False)
    ).rowcount == 1


def _insert_message(values: dict) -> int | None:
    # One statement, built once, executed with each row's values: building it per row through the
    # ORM's bulk-insert path cost ~0.5 ms a message.
    return db.session.connection().scalar(_INSERT_MESSAGE[db.session.get_bind().dialect.name], values)


_INSERT_MESSAGE = {name: insert_(Message.__table__).on_conflict_do_nothing(index_elements=["enrolment_id", "step"])
                   .returning(Message.__table__.c.id)
                   for name, insert_ in (("sqlite", sqlite_insert), ("postgresql", pg_insert))}


def finish_reason(row: Enrolment, now: datetime) -> str:
    last = db.session.scalar(select(Message.queued_at).where(Message.enrolment_id == row.id,
                                                             Message.state == MessageState.SENT)
                             .order_by(Message.queued_at.desc()).limit(1))
    return inactive.no_response_reason(row.sequence.name, row.sent, workdays.day_of(last or now))


def _advance(row: Enrolment, now: datetime, messaging: Messaging, configured: list[str], recent: dict[int, int],
             report: Pass) -> None:
    sequence, customer, step = row.sequence, row.customer, row.next_step
    stop = eligibility.stop_reason(customer)
    if stop is not None:
        state = EnrolmentState.RESPONDED if stop == "responded" else EnrolmentState.STOPPED
        if enrolment.end(row, state, stop, now):
            report.stopped += 1
            if customer.status is Status.IN_SEQUENCE:
                customer.status = enrolment.cadence_status(customer)
        return
    if sequence.paused:
        _move(row, step, now + timedelta(hours=1))
        return
    if step > sequence.length:
        if enrolment.end(row, EnrolmentState.INACTIVE, "no_response", now):
            inactive.move(customer, "no_response", finish_reason(row, now), None, now)
            report.finished += 1
        return
    zone = zone_of(customer)
    if not within_window(sequence, now, zone):
        if _move(row, step, next_opening(sequence, now, zone)):
            report.deferred += 1
        return
    definition = sequence.step(step)
    found, why = eligibility.routes(customer, definition.channel, messaging, configured)
    if why is None and recent.get(customer.id, 0) >= messaging.weekly_cap:
        why = "frequency_cap"
    if not _move(row, step, _after(sequence, step, now), step + 1):
        return  # another dispatcher took this step
    message_id = _insert_message({
        "enrolment_id": row.id, "sequence_id": sequence.id, "customer_id": customer.id, "step": step,
        "state": MessageState.SKIPPED if why else MessageState.QUEUED, "reason": why,
        "channel": found[0][0] if found else definition.channel.value, "queued_at": now, "result": [],
        "attempts": 0})
    if message_id is None:
        return
    if why:
        report.skipped += 1
        customers.record(customer, Kind.SEQUENCE, None, body=sequence.name, outcome="skipped", reason=why,
                         sequence_id=sequence.id, step=step, message_id=message_id)
    else:
        report.queued += 1
        report.message_ids.append(message_id)
        recent[customer.id] = recent.get(customer.id, 0) + 1


def _due(now: datetime):
    query = (select(Enrolment).where(Enrolment.state == EnrolmentState.ACTIVE, Enrolment.next_at <= now)
             .order_by(Enrolment.next_at, Enrolment.id).limit(BATCH)
             .options(selectinload(Enrolment.sequence),
                      selectinload(Enrolment.customer).selectinload(Customer.contacts),
                      selectinload(Enrolment.customer).selectinload(Customer.consents)))
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Enrolment)
    return db.session.scalars(query).all()


def repair(wall: datetime | None = None) -> tuple[list[int], int]:
    """Messages to enqueue again (their job was lost), and how many were marked uncertain."""
    wall = wall or clock.now()
    # A queued message whose job has not run by then lost it; a message "sending" for longer than a
    # send can take (network timeouts included) lost its worker.
    requeue_after = timedelta(seconds=current_app.config["SEND_REQUEUE_AFTER"])
    uncertain_after = timedelta(seconds=current_app.config["SEND_UNCERTAIN_AFTER"])
    uncertain = db.session.execute(
        update(Message).where(Message.state == MessageState.SENDING, Message.sending_at < wall - uncertain_after)
        .values(state=MessageState.UNCERTAIN, reason="worker_died").execution_options(synchronize_session=False)
    ).rowcount
    lost = list(db.session.scalars(select(Message.id).where(
        Message.state == MessageState.QUEUED,
        (Message.enqueued_at.is_(None)) | (Message.enqueued_at < wall - requeue_after),
        (Message.not_before.is_(None)) | (Message.not_before <= wall)).order_by(Message.id)))
    return lost, uncertain


def enqueue(message_ids: list[int]) -> int:
    """Put send jobs for these messages on the queue (after their rows are committed); the number of jobs."""
    if not message_ids:
        return 0
    from crm import tasks

    size = current_app.config["SEND_BATCH"]
    queue = redis.queue()
    jobs = 0
    for start in range(0, len(message_ids), size):
        batch = message_ids[start:start + size]
        db.session.execute(update(Message).where(Message.id.in_(batch)).values(enqueued_at=clock.now())
                           .execution_options(synchronize_session=False))
        db.session.commit()  # stamped before the job exists, so a fast job never races the stamp
        queue.enqueue(tasks.send_messages, batch, retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                      job_timeout=900, result_ttl=3600, failure_ttl=7 * 86400)
        jobs += 1
    return jobs


def run_due(now: datetime | None = None, send: bool = True) -> Pass:
    """One dispatch pass as of `now` (default: the clock); with `send`, enqueue the send jobs."""
    now = now or clock.now()
    report = Pass()
    messaging = settings.load(Messaging)
    configured = channels.configured(messaging)
    while True:
        rows = _due(now)
        recent = eligibility.recent_counts({row.customer_id for row in rows}, now)
        for row in rows:
            _advance(row, now, messaging, configured, recent, report)
        db.session.commit()
        if len(rows) < BATCH:
            break
    lost, report.uncertain = repair()
    db.session.commit()
    fresh = set(report.message_ids)
    if send and lost and redis.queue().count:
        # Jobs still wait on the queue: a message queued long ago is most likely in one of them (late
        # behind a backlog, not lost). Enqueueing it again would add a duplicate job per message at
        # every pass, and the duplicates would lengthen the backlog further. What is still queued
        # once the queue has drained lost its job (Redis flushed or restarted, a worker killed).
        lost = []
    report.requeued = len([ident for ident in lost if ident not in fresh])
    if send:
        report.jobs = enqueue(sorted(fresh | set(lost)))
    return report
