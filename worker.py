"""The RQ worker entry: `python worker.py` (Procfile `worker:`), with the scheduler on.

Each job runs in a forked work horse inside an app context with fresh database connections.
SIGTERM (what Heroku-like hosts send on deploy) is a warm shutdown: the current job finishes,
nothing new starts; a second signal or the host's SIGKILL stops it cold.

A clock thread enqueues the periodic jobs (`PERIODIC`): each job decides for itself whether it is
due and guards against running twice, so several workers each with a clock are safe, and no
extra process is needed on hosts that charge per process.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

from rq import Worker
from sqlalchemy.orm import configure_mappers

from crm import channels, create_app, tasks
from crm.extensions import db, redis

# (job, every so many seconds)
PERIODIC = [(tasks.nightly, 600), (tasks.dispatch_due, 60)]
log = logging.getLogger(__name__)


class AppWorker(Worker):
    """An RQ worker whose jobs run inside the Flask app context."""

    app = None

    def perform_job(self, job, queue):
        with self.app.app_context():
            # The fork shares the parent's pooled sockets; a horse must never reuse them.
            db.engine.dispose(close=False)
            try:
                return super().perform_job(job, queue)
            finally:
                db.session.remove()


def clock(app, stop: threading.Event) -> None:
    """Enqueue each periodic job when its interval has passed, until `stop` is set."""
    last: dict = {}
    while not stop.is_set():
        now = time.monotonic()
        for job, every in PERIODIC:
            if now - last.get(job, -every) >= every:
                last[job] = now
                try:
                    with app.app_context():
                        redis.queue().enqueue(job, job_timeout=3600, result_ttl=86400)
                except Exception:  # Redis away for a moment: the next tick tries again
                    log.exception("could not enqueue %s", job.__name__)
        stop.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="Exit once the queues are empty.")
    args = parser.parse_args(argv)

    app = create_app()
    AppWorker.app = app
    channels.warm_up()
    configure_mappers()
    with app.app_context():
        queues = [redis.queue(name) for name in app.config["RQ_QUEUES"]]
        worker = AppWorker(queues, connection=redis.connection)
    stop = threading.Event()
    if not args.burst:
        threading.Thread(target=clock, args=(app, stop), name="clock", daemon=True).start()
    try:
        worker.work(with_scheduler=True, burst=args.burst)
    finally:
        stop.set()


if __name__ == "__main__":
    main()
