"""The lapsed-client queues: lapsing and lapsed customers by value at risk, and bulk actions."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm import accounts, clock, lapsed, rfm, saved_segments, settings
from crm.errors import FieldError
from crm.extensions import db, htmx
from crm.figures import days_since
from crm.models import Lapse, Role
from crm.web import partials
from crm.web.customer_forms import CHANNEL_LABELS, REASON_LABELS
from crm.web.forms import as_date
from crm.web.segments import BEHAVIOUR_LABELS

bp = Blueprint("lapsed", __name__, url_prefix="/lapsed")


def _context(filters: lapsed.QueueFilters, message: str | None = None) -> dict:
    rows, next_cursor = lapsed.page(filters, request.args.get("after"))
    config = settings.load()
    return {
        "filters": filters, "rows": rows, "next_cursor": next_cursor, "message": message,
        "today": clock.team_today(), "days_since": days_since, "team": accounts.active_team(),
        "groups": {key: config.group_name(key) for key in rfm.GROUPS}, "group_of": rfm.group_of,
        "behaviour_labels": BEHAVIOUR_LABELS, "channel_labels": CHANNEL_LABELS, "reason_labels": REASON_LABELS,
        "dismiss_days": lapsed.DISMISS_DAYS, "segments": saved_segments.listing(),
        "is_owner": current_user.role is Role.OWNER,
    }


@bp.get("")
def index():
    """Show a queue (lapsing or lapsed), most value at risk first."""
    filters = lapsed.QueueFilters.from_args(request.args)
    context = _context(filters)
    if partials.wanted():
        template = "lapsed/_rows.html" if request.args.get("after") else "lapsed/_results.html"
        return render_template(template, **context)
    return render_template("lapsed/index.html", sizes=lapsed.sizes(), **context)


@bp.get("/excluded")
def excluded():
    """How many of this queue were left out, and why (loaded after the page; cached a few minutes)."""
    counts = lapsed.kept_exclusion_counts(lapsed.QueueFilters.from_args(request.args))
    return render_template("lapsed/_excluded.html", counts=counts, reasons=lapsed.EXCLUSIONS)


def _act(work) -> str:
    try:
        message = work()
        db.session.commit()
        return message
    except FieldError as error:
        db.session.rollback()
        return error.message


def _ids() -> list[int]:
    return [ident for ident in map(lapsed.as_id, request.form.getlist("ids")) if ident]


def _after_action(message: str):
    filters = lapsed.QueueFilters.from_args(request.form)
    if not htmx:
        flash(message, "info")
        return redirect(url_for("lapsed.index", **filters.to_args()))
    return render_template("lapsed/_results.html", **_context(filters, message))


@bp.post("/callbacks")
def callbacks():
    """Put the ticked customers in a manager's call-back queue for a day."""
    def work():
        added = lapsed.assign_callbacks(_ids(), request.form.get("manager_id"), as_date(request.form.get("day")),
                                        current_user)
        return _("%(n)d customers added to the call-back queue.", n=added)
    return _after_action(_act(work))


@bp.post("/reason")
def reason():
    """Record why the ticked customers left."""
    return _after_action(_act(lambda: _("Reason recorded for %(n)d customers.", n=lapsed.set_leave_reason(
        _ids(), request.form.get("reason", ""), current_user))))


@bp.post("/dismiss")
def dismiss():
    """Leave the ticked customers out of the queues for a while."""
    return _after_action(_act(lambda: _("%(n)d customers dismissed.", n=lapsed.dismiss(
        _ids(), request.form.get("days"), current_user))))


@bp.app_template_global()
def lapse_label(value: str) -> str:
    return _("Lapsing") if value == Lapse.LAPSING.value else _("Lapsed")

