"""The worker entry runs jobs from a real Redis inside the app, and stops gracefully on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from redis import Redis
from rq import Queue, Worker

from tests.runtime import ROOT, host_env


def _env(app, redis_url):
    return host_env(APP_ENV="testing", SECRET_KEY="s", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                    REDIS_URL=redis_url, INSTANCE_PATH=app.config["INSTANCE_DIR"])


def test_worker_entry_runs_a_job_against_the_database(app, redis_url):
    job = Queue("default", connection=Redis.from_url(redis_url)).enqueue("crm.tasks.database_ping")
    result = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=_env(app, redis_url),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    job.refresh()
    assert job.get_status() == "finished", result.stderr
    assert job.return_value() == "sqlite"


def test_worker_starts_with_its_scheduler_and_stops_gracefully_on_sigterm(app, redis_url):
    connection = Redis.from_url(redis_url)
    proc = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=_env(app, redis_url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not Worker.all(connection=connection) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert Worker.all(connection=connection), "the worker never registered with Redis"
        job = Queue("default", connection=connection).enqueue("crm.tasks.database_ping")
        while job.get_status(refresh=True) != "finished" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.return_value() == "sqlite"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Scheduler" in output or "scheduler" in output
    assert Worker.all(connection=connection) == []
