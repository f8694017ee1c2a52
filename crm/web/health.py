"""`/healthz`: is the database reachable, is Redis? For load balancers and uptime checks."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from crm.extensions import db, redis
from crm.web.access import public

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    """Report 200 when the database and Redis both answer, 503 naming the one that does not."""
    checks = {}
    try:
        db.session.execute(db.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        current_app.logger.exception("health check: database")
        checks["database"] = "unavailable"
    try:
        redis.connection.ping()
        checks["redis"] = "ok"
    except Exception:
        current_app.logger.exception("health check: redis")
        checks["redis"] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", checks=checks), 200 if healthy else 503
