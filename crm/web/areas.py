"""The areas of the navigation bar that later work fills in, each a real page already.

Each area says what it is for, so a new team sees the whole product from the first day. As an
area gets its own blueprint (crm/web/customers.py, ...), its entry moves out of this module.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

bp = Blueprint("areas", __name__)


@bp.get("/")
def index():
    """Open the dashboard, the overview every user starts from."""
    return redirect(url_for("areas.dashboard"))


def _area(name: str):
    return render_template(f"areas/{name}.html")


@bp.get("/dashboard")
def dashboard():
    """Show the health of the customer base."""
    return _area("dashboard")
