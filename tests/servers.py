"""Real servers for the tests, on 127.0.0.1 and throwaway directories: Redis, PostgreSQL, the app."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def redis_server():
    """Yield the URL of a fresh Redis on a free port: Debian's redis-server when installed (what
    production runs), else the one `make run` embeds."""
    from crm.embedded_redis import start, stop

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="crm-redis-")
    server = start(workdir, port, binary=shutil.which("redis-server"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(server)
    shutil.rmtree(workdir, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    return found[-1] if found and found[-1] else None


@contextmanager
def postgres_server():
    """Yield the URL of an empty PostgreSQL database: TEST_POSTGRES_URL, or a throwaway cluster."""
    if os.environ.get("TEST_POSTGRES_URL"):
        yield os.environ["TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(
            "PostgreSQL tests need a PostgreSQL server: install it (Debian: apt-get install postgresql; "
            "macOS: brew install postgresql) or set TEST_POSTGRES_URL to an empty database."
        )
    workdir = Path(tempfile.mkdtemp(prefix="crm-pg-"))
    data = workdir / "data"
    # PostgreSQL refuses to run as root; CI runs as root, so the cluster belongs to `postgres`.
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        workdir.chmod(0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "crm", "--auth=trust", "-E", "UTF8"],
                   check=True, stdout=subprocess.DEVNULL)
    opts = f"-p {port} -h 127.0.0.1 -k {workdir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(workdir / "log"), "-w", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://crm@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], stdout=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(admin_url: str, name: str) -> str:
    """Create an empty database beside `admin_url`'s and return its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def live_server(app):
    """Serve `app` from a thread on a free loopback port; yield its base URL."""
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(5)
