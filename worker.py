"""The RQ worker entry: `python worker.py` (Procfile `worker:`), with the scheduler on.

Each job runs in a forked work horse inside an app context with fresh database connections.
SIGTERM (what Heroku-like hosts send on deploy) is a warm shutdown: the current job finishes,
nothing new starts; a second signal or the host's SIGKILL stops it cold.
"""

from __future__ import annotations

import argparse

from rq import Worker

from crm import create_app
from crm.extensions import db, redis


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="Exit once the queues are empty.")
    args = parser.parse_args(argv)

    app = create_app()
    AppWorker.app = app
    with app.app_context():
        queues = [redis.queue(name) for name in app.config["RQ_QUEUES"]]
        worker = AppWorker(queues, connection=redis.connection)
    worker.work(with_scheduler=True, burst=args.burst)


if __name__ == "__main__":
    main()
