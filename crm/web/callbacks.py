"""The call-back queue: a manager's calls for today, one click (or key) per outcome, the row
swapping in place with an undo; an owner's view of anyone's queue or the team's; reassigning;
scheduling a call from a card; the calls-per-day history."""

from __future__ import annotations

from datetime import date, time, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm import accounts, callbacks, clock, figures, settings, workdays
from crm.errors import FieldError
from crm.extensions import db, htmx
from crm.figures import days_since
from crm.ids import as_id, as_ids
from crm.models import CallBack, CallReason, Customer, User
from crm.settings import CallRules
from crm.web.access import owner_only
from crm.web.customer_forms import CHANNEL_LABELS, OUTCOME_LABELS, REASON_LABELS
from crm.web.forms import as_date

bp = Blueprint("callbacks", __name__, url_prefix="/callbacks")

CALL_REASONS = {"lapsing": _l("Lapsing"), "lapsed": _l("Lapsed"), "sequence": _l("Sequence hand-off"),
                "promised": _l("Promised call-back"), "birthday": _l("Birthday"), "vip": _l("VIP about to lapse"),
                "manual": _l("Call-back")}
FORMS = ("not_interested", "call_back", "note")  # outcomes that ask one more thing before they are logged
HISTORY_DAYS = (14, 30, 90)
MAX_HISTORY_DAYS = 366  # one bar group per day: a longer range keeps its last year


@bp.context_processor
def _labels() -> dict:
    return {"call_reasons": CALL_REASONS, "outcome_labels": OUTCOME_LABELS, "channel_labels": CHANNEL_LABELS,
            "reason_labels": REASON_LABELS, "today": clock.team_today(), "days_since": days_since}


@bp.app_template_global()
def call_share_labels() -> dict:
    return callbacks.SHARE


# --- whose queue ---------------------------------------------------------------------------------

def _scope() -> str:
    """Whose queue the page shows: the user's own; an owner may pick anyone's or the team's ("team")."""
    wanted = request.values.get("view", "")
    if not current_user.is_owner or not wanted:
        return str(current_user.id)
    return "team" if wanted == "team" else str(as_id(wanted) or current_user.id)


def _progress(scope: str) -> callbacks.Progress:
    if scope == "team":
        return callbacks.team_progress()
    return callbacks.progress(db.session.get(User, int(scope)))


@bp.get("")
def index():
    """Today's calls: the signed-in manager's own, or (owners) anyone's or the team's."""
    scope = _scope()
    if scope == "team":
        queues = callbacks.team_queues()
    else:
        member = db.session.get(User, int(scope))
        if member is None:
            abort(404)
        queues = [callbacks.queue(member)]
    team = accounts.active_team()
    progress = sum((q.progress for q in queues), callbacks.Progress()) if scope == "team" else queues[0].progress
    return render_template("callbacks/index.html", queues=queues, scope=scope, team=team, progress=progress,
                           opened=as_id(request.args.get("open")), form_kind=request.args.get("form"))


# --- one row -------------------------------------------------------------------------------------

def _callback_or_abort(callback_id: int) -> CallBack:
    callback = db.session.get(CallBack, callback_id)
    if callback is None:
        abort(404)
    if not current_user.is_owner and callback.manager_id != current_user.id:
        abort(403)
    return callback


def _row_response(callback: CallBack, status: int = 200, *, form: str | None = None, error: FieldError | None = None,
                  message: str | None = None, values: dict | None = None, counted: bool = False):
    """The row as it now stands, and the progress line out of band, or (no JavaScript) the page.
    `counted`: a call was logged or taken back, so the calls-per-day history under the queue reloads."""
    if not htmx:
        if message or error:
            flash(message or error.message, "error")
        elif callback.done_at:
            flash(_("%(name)s: %(outcome)s.", name=callback.customer.name,
                    outcome=OUTCOME_LABELS.get(callback.outcome, callback.outcome)), "info")
        args = {"view": request.values.get("view")} if request.values.get("view") else {}
        if form or error:
            args.update(open=callback.id, form=form or request.form.get("outcome"))
        return redirect(url_for("callbacks.index", **args))
    scope = _scope()
    return render_template("callbacks/_row_swap.html", row=callbacks.row_of(callback), form_kind=form,
                           error=error, message=message, values=values or {}, scope=scope,
                           undo_until=_undo_until(callback), progress=_progress(scope)), status, \
        {"HX-Trigger": "calls-counted"} if counted else {}


def _undo_until(callback: CallBack) -> int | None:
    """When the row's Undo button goes away (epoch ms), for a call this user just logged."""
    if callback.done_at is None or callback.handled_by_id != current_user.id or not callback.undo:
        return None
    shown = callbacks.UNDO_SECONDS // 3  # the button stays a few seconds; the server allows longer
    return int((figures.aware(callback.done_at) + timedelta(seconds=shown)).timestamp() * 1000)


@bp.get("/<int:callback_id>")
def show_row(callback_id: int):
    """One row of the queue (what Cancel on an outcome form returns to)."""
    callback = _callback_or_abort(callback_id)
    if not htmx:
        return redirect(url_for("callbacks.index"))
    return render_template("callbacks/_row.html", row=callbacks.row_of(callback), scope=_scope())


@bp.get("/<int:callback_id>/form/<kind>")
def outcome_form(callback_id: int, kind: str):
    """The row with an outcome's small form open (reason for leaving, when to call back, a note)."""
    callback = _callback_or_abort(callback_id)
    if kind not in FORMS:
        abort(404)
    if not htmx:
        return redirect(url_for("callbacks.index", open=callback_id, form=kind, view=request.args.get("view")))
    return render_template("callbacks/_row.html", row=callbacks.row_of(callback), form_kind=kind, scope=_scope(),
                           values={})


@bp.post("/<int:callback_id>/outcome")
def outcome(callback_id: int):
    """Log a call's outcome on the row, once."""
    callback = _callback_or_abort(callback_id)
    kind = request.form.get("outcome", "")
    values = {key: request.form.get(key, "") for key in ("note", "reason", "when", "inactive")}
    try:
        callbacks.log_outcome(callback.id, kind, current_user, note=values["note"], reason=values["reason"],
                              inactive=bool(values["inactive"]), when=values["when"])
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _row_response(callback, 422, form=kind if kind in FORMS else None, error=error, values=values)
    except callbacks.AlreadyHandled as handled:
        db.session.rollback()
        return _row_response(handled.callback, 409, message=_handled_message(handled.callback))
    except callbacks.Refused as refused:
        db.session.rollback()
        return _row_response(callback, 409, message=refused.message)
    return _row_response(callback, counted=True)


def _handled_message(callback: CallBack) -> str:
    who = callback.handled_by.name if callback.handled_by else _("someone")
    if callback.handled_by_id == current_user.id:
        return _("You logged this call already: %(outcome)s.",
                 outcome=OUTCOME_LABELS.get(callback.outcome, callback.outcome))
    return _("%(who)s has just handled this call (%(outcome)s): no need to call again.", who=who,
             outcome=OUTCOME_LABELS.get(callback.outcome, callback.outcome))


@bp.post("/<int:callback_id>/undo")
def undo(callback_id: int):
    """Take back an outcome logged moments ago."""
    callback = _callback_or_abort(callback_id)
    try:
        callbacks.take_back(callback.id, current_user)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _row_response(callback, 409, message=error.message)
    return _row_response(callback, counted=True)


@bp.post("/<int:callback_id>/note")
def note(callback_id: int):
    """A free note on the row and the customer's timeline; the call stays to do."""
    callback = _callback_or_abort(callback_id)
    try:
        callbacks.add_note(callback.id, request.form.get("note", ""), current_user)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _row_response(callback, 422, form="note", error=error, values={"note": request.form.get("note", "")})
    return _row_response(callback)


# --- assigning -----------------------------------------------------------------------------------

@bp.post("/reassign")
@owner_only
def reassign():
    """Give the ticked calls to another manager, or share them out."""
    try:
        moved = callbacks.reassign(as_ids(request.form.getlist("ids")), request.form.get("manager_id"),
                                   current_user)
        db.session.commit()
        flash(_("%(n)d calls reassigned.", n=moved), "info")
    except FieldError as error:
        db.session.rollback()
        flash(error.message, "error")
    return redirect(url_for("callbacks.index", view=request.form.get("view") or None))


@bp.post("/schedule")
def schedule():
    """Schedule a call from a customer's card: a manager (or shared out), a day, an optional time."""
    customer = db.session.get(Customer, as_id(request.form.get("customer_id")) or 0)
    if customer is None:
        abort(404)
    try:
        day = as_date(request.form.get("day"))
        at = _time(request.form.get("at"))
        added = callbacks.assign([customer], request.form.get("manager_id"), day, current_user,
                                 reason=CallReason.PROMISED if at else CallReason.MANUAL,
                                 note=(request.form.get("note") or "").strip()[:2000] or None, at=at)
        db.session.commit()
        flash(_("Call-back scheduled.") if added else _("%(name)s already waits for a call.", name=customer.name),
              "info" if added else "error")
    except FieldError as error:
        db.session.rollback()
        flash(error.message, "error")
    return redirect(url_for("customers.card", customer_id=customer.id))


def _time(raw: str | None) -> time | None:
    if not (raw or "").strip():
        return None
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise FieldError("at", _("Pick a time such as 14:30.")) from None


# --- history -------------------------------------------------------------------------------------

def _history_days() -> tuple[date, date, bool]:
    """The team days the history covers, both included, and whether they were chosen as dates:
    `called_from`/`called_to` (an end left out is today, or two weeks before the other), else the
    last `days` days."""
    first, last = (workdays.parse_day(request.args.get(name)) for name in ("called_from", "called_to"))
    days = as_id(request.args.get("days")) if as_id(request.args.get("days")) in HISTORY_DAYS else HISTORY_DAYS[0]
    chosen = bool(first or last)
    last = last or clock.team_today()
    first = max(first or last - timedelta(days=days - 1), last - timedelta(days=MAX_HISTORY_DAYS - 1))
    return first, last, chosen


@bp.get("/history")
def history():
    """Calls per day: made, reached, responded, and customers who ordered soon after; one outcome or all."""
    scope = _scope()
    member = None if scope == "team" else db.session.get(User, int(scope))
    if scope != "team" and member is None:
        abort(404)
    first, last, chosen = _history_days()
    outcome = request.args.get("outcome") if request.args.get("outcome") in callbacks.OUTCOMES else ""
    rows = callbacks.history(member.id if member else None, (last - first).days + 1, today=last,
                             outcome=outcome or None) if first <= last else []
    rules = settings.load(CallRules)
    team = accounts.active_team()
    template = "callbacks/_history.html" if htmx else "callbacks/history.html"
    return render_template(template, rows=rows, chart=_chart(rows), member=member, scope=scope,
                           days=(last - first).days + 1, first=first, last=last, chosen=chosen, outcome=outcome,
                           outcomes=callbacks.OUTCOMES, team=team, window=rules.returned_within_days,
                           choices=HISTORY_DAYS)


SERIES = (("calls", _l("Calls")), ("reached", _l("Reached")), ("responded", _l("Responded")),
          ("returned", _l("Ordered after")))


def _chart(rows: list[callbacks.Day]) -> dict:
    """Bars for an inline SVG (no script, no inline style): per day, one bar per series."""
    height, bar, gap = 120, 4, 6
    top = max([getattr(r, key) for r in rows for key, _label in SERIES] + [1])
    width = len(rows) * (len(SERIES) * bar + gap)
    bars = []
    for i, entry in enumerate(rows):
        x0 = i * (len(SERIES) * bar + gap)
        for j, (key, _label) in enumerate(SERIES):
            value = getattr(entry, key)
            h = round(value / top * height, 1)
            bars.append({"x": x0 + j * bar, "y": height - h, "h": h, "series": key, "value": value,
                         "day": entry.day})
    return {"width": width, "height": height, "bars": bars, "top": top, "series": SERIES}


@bp.app_template_global()
def working_hours() -> tuple[int, int]:
    return current_app.config["WORKDAY_START_HOUR"], current_app.config["WORKDAY_END_HOUR"]


@bp.app_template_global()
def next_call_day() -> date:
    """The day a new call-back is suggested for: today if it is a working day, else the next one."""
    today = clock.team_today()
    return today if workdays.is_working_day(today) else workdays.next_working_day(today)
