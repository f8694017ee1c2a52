"""The nightly rebuild: once per team day, after the night hour in the team's time zone, whatever
the number of workers asking; the worker's clock enqueues it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from crm import tasks
from crm.extensions import redis
from worker import PERIODIC, clock


def _zone(late: bool) -> str:
    """A fixed-offset zone where it is now past (or before) the night hour."""
    hour = datetime.now(UTC).hour
    for offset in range(-12, 15):
        local = (hour + offset) % 24
        if (local >= tasks.NIGHTLY_HOUR + 1 and local <= 22) if late else local < tasks.NIGHTLY_HOUR:
            # Etc/GMT-5 is UTC+5: the sign is reversed in these names.
            return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}" if offset else "UTC"
    raise AssertionError("no zone found")


def test_nightly_runs_once_per_team_day(make_app):
    app = make_app(TEAM_TIMEZONE=_zone(late=True))
    with app.app_context():
        from crm.extensions import db
        db.create_all()
        assert tasks.nightly() == "done"
        assert tasks.nightly() == "already ran"  # a second worker's clock, the same day
        # The dashboard's summaries followed the rebuild: tonight's record of the base is there.
        from crm import clock, summaries
        from crm.models import BaseDay

        assert summaries.state()["today"] == clock.team_today().isoformat()
        assert db.session.get(BaseDay, clock.team_today()) is not None


def test_nightly_waits_for_the_night_hour(make_app):
    app = make_app(TEAM_TIMEZONE=_zone(late=False))
    with app.app_context():
        assert tasks.nightly() == "too early"


def test_the_worker_clock_enqueues_the_nightly_and_dispatch_jobs(app):
    stop = threading.Event()
    thread = threading.Thread(target=clock, args=(app, stop), daemon=True)
    thread.start()
    try:
        with app.app_context():
            for _ in range(50):
                if redis.queue().count >= len(PERIODIC):  # every periodic job, enqueued one after another
                    break
                stop.wait(0.1)
            names = [job.func_name for job in redis.queue().jobs]
    finally:
        stop.set()
        thread.join(timeout=15)
    assert names == [f"crm.tasks.{job.__name__}" for job, _ in PERIODIC]
