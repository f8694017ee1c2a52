"""Running the project's own entry points as a host would: subprocesses with an environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def host_env(**extra: str) -> dict[str, str]:
    """The environment of a deployed process: the venv's tools on PATH, only what we pass set."""
    env = {k: v for k, v in os.environ.items() if k not in ("APP_ENV", "DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def procfile() -> dict[str, str]:
    """Return the Procfile's process types and their commands."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())
