"""`make run`: migrate, seed on the first run, then serve web + worker (+ embedded Redis).

Everything runs in the foreground; Ctrl-C stops all of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from crm.config import PROJECT_ROOT


def _prepare(app) -> None:
    from flask_migrate import upgrade

    from crm import demo

    with app.app_context():
        upgrade()
        if not demo.has_users():
            report = demo.seed(demo.FIRST_RUN_CUSTOMERS, demo.default_locale(app.config["BABEL_DEFAULT_LOCALE"]))
            print(f"First run: demo data seeded ({report.customers:,} customers, {report.orders:,} orders "
                  f"in {report.seconds:.1f}s).")


def main() -> int:
    os.environ.setdefault("APP_ENV", "development")
    port = os.environ.get("PORT", "5000")
    if not os.environ.get("REDIS_URL"):
        from crm.config import INSTANCE_DIR
        from crm.embedded_redis import ensure_started

        # Stopped at exit (atexit), after the web server and the worker below have stopped.
        os.environ["REDIS_URL"] = ensure_started(INSTANCE_DIR)
        print(f"Embedded Redis on {os.environ['REDIS_URL']}")

    from crm import create_app
    from crm.demo import DEMO_LOGINS

    _prepare(create_app())

    # Ctrl-C and `kill` both end the session cleanly, even when started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    python = sys.executable
    children = [
        subprocess.Popen([python, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", port],
                         cwd=PROJECT_ROOT),
        subprocess.Popen([python, "worker.py"], cwd=PROJECT_ROOT),
    ]
    print(f"\n  Retention CRM: http://127.0.0.1:{port}/")
    for email, _name, password, role, _locale in DEMO_LOGINS:
        print(f"  {role.value:8} {email} / {password}")
    print("  Ctrl-C stops the web server, the worker and Redis.\n")

    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # warm shutdown for the worker
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    return max((child.returncode or 0) for child in children)


if __name__ == "__main__":
    sys.exit(main())
