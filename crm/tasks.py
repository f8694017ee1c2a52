"""RQ jobs: module-level functions that take plain values, call the domain, and commit.

They run inside the app context that `worker.py` sets up for each job.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from rq import get_current_job
from sqlalchemy import select

from crm import clock, delivery, dispatch, enrolment, imports, lapsed, segments, stages, summaries
from crm.extensions import db, redis
from crm.models import Stage

NIGHTLY_HOUR = 3  # the team's local hour after which the night's rebuild runs


def database_ping() -> str:
    """Run one query and return the database dialect: proves a worker reaches the database."""
    db.session.execute(db.text("SELECT 1"))
    return db.engine.dialect.name


def run_import(run_id: int) -> str:
    """Run a confirmed CSV import; run again, it continues after the rows already processed."""
    run = imports.execute(run_id, imports.Settings.from_config(current_app.config))
    db.session.commit()
    lapsed.forget_exclusion_counts()  # the queues' "left out" line counts the imported customers
    return run.state.value if run else "missing"


def rebuild_segments() -> dict:
    """Rebuild totals, segments, statuses and stages for everyone; progress goes to the job's meta."""
    job = get_current_job()

    def progress(step: str, percent: int) -> None:
        if job is not None:
            job.meta.update(step=step, percent=percent)
            job.save_meta()

    try:
        with segments.exclusive():
            report = segments.rebuild(progress=progress)
            db.session.commit()
            # The dashboard's summaries read the segments and statuses just written; a step of their
            # own, so the rebuild's figures come out first.
            progress("dashboard", 97)
            dashboard = summaries.build(clock.team_today())
            db.session.commit()
        # The board keeps its columns' sums for a minute, the queues their "left out" counts a few:
        # the rebuild has just moved cards and customers.
        stages.forget_totals(*db.session.scalars(select(Stage.id)))
        lapsed.forget_exclusion_counts()
    except segments.RebuildRunning:
        return {"state": "busy"}
    return {"state": "done", "seconds": report.seconds, "changed": report.changed,
            "dashboard_seconds": dashboard.seconds}


def nightly() -> str:
    """Run the night's rebuild once per team day, after NIGHTLY_HOUR in the team's time zone.

    The worker's clock enqueues this every few minutes; the Redis key makes sure one run happens
    per day however many workers there are, and a worker that was down at 3 am catches up."""
    local = datetime.now(ZoneInfo(current_app.config["TEAM_TIMEZONE"]))
    if local.hour < NIGHTLY_HOUR:
        return "too early"
    key = f"segments:nightly:{clock.team_today().isoformat()}"
    if not redis.connection.set(key, "1", nx=True, ex=2 * 86400):
        return "already ran"
    try:
        result = rebuild_segments()
    except Exception:
        redis.connection.delete(key)  # a failed night is tried again on the next tick
        raise
    if result["state"] == "busy":
        redis.connection.delete(key)
    return result["state"]


class SendLater(Exception):
    """Some messages of a send job met a passing failure: RQ runs the job again after a backoff."""


def dispatch_due() -> dict:
    """The per-minute pass: due steps become messages and send jobs; automatic rules run once a day
    (after the night's rebuild has refreshed who is lapsing)."""
    local = datetime.now(ZoneInfo(current_app.config["TEAM_TIMEZONE"]))
    rules = {}
    if local.hour >= NIGHTLY_HOUR + 1:
        rules = {rule: report.enrolled for rule, report in enrolment.apply_rules().items()}
        db.session.commit()
    report = dispatch.run_due()
    return {"queued": report.queued, "skipped": report.skipped, "finished": report.finished,
            "requeued": report.requeued, "uncertain": report.uncertain, "jobs": report.jobs, "rules": rules}


def send_messages(message_ids: list[int]) -> dict:
    """Send a batch of queued messages; raise SendLater when some must be tried again."""
    report = delivery.send_batch(message_ids)
    if report.retry:
        raise SendLater(f"{report.retry} of {len(message_ids)} messages to try again")
    return dict(report.counts)
