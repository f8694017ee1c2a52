"""Configuration from the environment: URL fix-ups, secrets, production safety."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm import config

ROOT = Path(__file__).resolve().parent.parent


def test_heroku_postgres_url_is_pointed_at_psycopg3():
    assert config.database_url("postgres://u:p@db.internal:5432/crm") == "postgresql+psycopg://u:p@db.internal:5432/crm"
    assert config.database_url("postgresql://u@h/crm") == "postgresql+psycopg://u@h/crm"
    assert config.database_url("postgresql+psycopg://u@h/crm") == "postgresql+psycopg://u@h/crm"


def test_default_database_is_sqlite_under_instance(tmp_path):
    assert config.database_url(None, tmp_path) == f"sqlite:///{tmp_path / 'crm.sqlite3'}"


def test_rediss_url_gets_ssl_cert_reqs_none_and_keeps_its_query():
    fixed = config.redis_url("rediss://:secret@redis.internal:6380/0?health_check_interval=10")
    assert fixed == "rediss://:secret@redis.internal:6380/0?health_check_interval=10&ssl_cert_reqs=none"
    assert config.redis_url("rediss://h:1/0?ssl_cert_reqs=required").endswith("ssl_cert_reqs=required")
    assert config.redis_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert config.redis_url(None) is None


def test_production_without_secret_key_refuses_to_load():
    with pytest.raises(config.ConfigError, match="SECRET_KEY is not set"):
        config.load({"APP_ENV": "production"})


def test_production_is_the_default_profile_and_is_strict():
    settings = config.load({"SECRET_KEY": "x" * 32})
    assert settings["APP_ENV"] == "production"
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert settings["REMEMBER_COOKIE_SECURE"] is True


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path):
    first = config.load({"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)})["SECRET_KEY"]
    second = config.load({"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)})["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_unknown_app_env_is_refused():
    with pytest.raises(config.ConfigError, match="APP_ENV"):
        config.load({"APP_ENV": "staging", "SECRET_KEY": "x"})


def test_team_time_zone_and_currency_come_from_the_environment():
    settings = config.load({"SECRET_KEY": "x", "TEAM_TIMEZONE": "Asia/Vladivostok", "TEAM_CURRENCY": "RUB"})
    assert settings["TEAM_TIMEZONE"] == "Asia/Vladivostok"
    assert settings["TEAM_CURRENCY"] == "RUB"


def test_the_web_entry_stops_with_a_clear_message_when_production_lacks_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "APP_ENV")}
    env["INSTANCE_PATH"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_proxyfix_rewrites_scheme_host_and_client_address(app):
    from flask import jsonify, request

    @app.get("/_probe")
    def _probe():
        return jsonify(url=request.url_root, addr=request.remote_addr)

    from crm.web.access import public

    public(_probe)
    response = app.test_client().get(
        "/_probe", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "crm.example.com",
                            "X-Forwarded-For": "203.0.113.9"})
    assert response.json == {"url": "https://crm.example.com/", "addr": "203.0.113.9"}


def test_security_headers_and_strict_csp_on_every_page(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "HX-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert "<script>" not in html and " on" not in html.split("<body", 1)[1].split(">", 1)[0]
    assert '"includeIndicatorStyles": false' in html
