"""The Procfile works as a Heroku-like host runs it: release migrates, web serves on $PORT."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from tests import servers
from tests.runtime import ROOT, host_env, procfile


def test_procfile_declares_release_web_and_worker():
    processes = procfile()
    assert processes["release"] == "flask --app app db upgrade"
    assert processes["web"].startswith("gunicorn app:app")
    assert processes["worker"] == "python worker.py"


def test_release_then_web_serve_on_port_with_production_settings(tmp_path, redis_url):
    port = servers.free_port()
    env = host_env(SECRET_KEY="a-production-secret", DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
                   REDIS_URL=redis_url, PORT=str(port), WEB_CONCURRENCY="2", INSTANCE_PATH=str(tmp_path))
    release = subprocess.run(procfile()["release"], shell=True, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
    assert release.returncode == 0, release.stderr

    log = open(tmp_path / "web.log", "w+")
    web = subprocess.Popen(procfile()["web"], shell=True, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        servers.wait_for_port(port, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as response:
            cookie = response.headers["Set-Cookie"]
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        import os
        import signal

        os.killpg(web.pid, signal.SIGTERM)
        web.wait(20)
    output = Path(tmp_path / "web.log").read_text()
    assert f"Listening at: http://0.0.0.0:{port}" in output
    assert output.count("Booting worker") == 2  # WEB_CONCURRENCY honoured


def test_app_json_provisions_postgres_redis_and_a_generated_secret():
    manifest = json.loads((ROOT / "app.json").read_text())
    addons = {addon["plan"].split(":")[0] if isinstance(addon, dict) else addon.split(":")[0]
              for addon in manifest["addons"]}
    assert {"heroku-postgresql", "heroku-redis"} <= addons
    assert manifest["env"]["SECRET_KEY"]["generator"] == "secret"
    assert set(manifest["formation"]) == {"web", "worker"}
