"""The owner's settings: the overview page, how segments and lapse are judged, the rebuild, the
message channels (with a test send), the inbound hooks and the automatic enrolment rules."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from babel.numbers import get_currency_precision
from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from rq.exceptions import NoSuchJobError
from rq.job import Job
from wtforms import DecimalField, FloatField, IntegerField, RadioField, SelectField
from wtforms.validators import InputRequired

from crm import channels, rfm, rules, segments, sequences, settings, tasks
from crm.errors import FieldError
from crm.extensions import db, htmx, redis
from crm.hook_secrets import secret_for
from crm.settings import CHANNELS, CallRules, Messaging
from crm.web.access import owner_only
from crm.web.forms import attach_error, select_choices

bp = Blueprint("settings", __name__, url_prefix="/settings")
JOB_KEY = "segments:rebuild-job"  # the id of the rebuild started from this page


class SegmentationForm(FlaskForm):
    business_type = SelectField(_l("What the business sells, how often"))
    lapsing_days = IntegerField(_l("Lapsing after (days)"), validators=[InputRequired()])
    lapsed_days = IntegerField(_l("Lapsed after (days)"), validators=[InputRequired()])
    lapsing_factor = FloatField(_l("Lapsing past (× their usual interval)"), validators=[InputRequired()])
    lapsed_factor = FloatField(_l("Lapsed past (× their usual interval)"), validators=[InputRequired()])
    rfm_mode = RadioField(_l("RFM boundaries"), choices=select_choices([
        ("quantiles", _l("By thirds of the customers (automatic)")), ("fixed", _l("Fixed values I set"))]))
    r3_days = IntegerField(_l("Recency 3: last order within (days)"), validators=[InputRequired()])
    r2_days = IntegerField(_l("Recency 2: last order within (days)"), validators=[InputRequired()])
    f2_orders = IntegerField(_l("Frequency 2: from (orders)"), validators=[InputRequired()])
    f3_orders = IntegerField(_l("Frequency 3: from (orders)"), validators=[InputRequired()])
    m2_amount = DecimalField(_l("Monetary 2: from (spent)"), places=2, validators=[InputRequired()])
    m3_amount = DecimalField(_l("Monetary 3: from (spent)"), places=2, validators=[InputRequired()])


class CallRulesForm(FlaskForm):
    daily_cap = IntegerField(_l("Calls a manager's day holds"), validators=[InputRequired()])
    attempt_limit = IntegerField(_l("Unanswered calls before giving up"), validators=[InputRequired()])
    after_attempts = SelectField(_l("Then"), choices=select_choices(settings.AFTER_ATTEMPTS.items()))
    returned_within_days = IntegerField(_l("A call brought the customer back if they ordered within (days)"),
                                        validators=[InputRequired()])


def _segmentation_form(config: settings.Segmentation) -> SegmentationForm:
    form = SegmentationForm(data={**config.__dict__, "m2_amount": config.m2_amount / 100,
                                  "m3_amount": config.m3_amount / 100})
    form.business_type.choices = select_choices(
        (key, label) for key, (label, _lapsing, _lapsed) in settings.BUSINESS_TYPES.items())
    return form


def _group_names(config: settings.Segmentation) -> dict[str, str]:
    """The names typed for the RFM groups (as posted, or as stored); empty means the default name."""
    if request.method == "POST":
        return {key: (request.form.get(f"group_{key}") or "").strip() for key in rfm.GROUPS}
    return {key: config.group_names.get(key, "") for key in rfm.GROUPS}


def _page(form: SegmentationForm, config: settings.Segmentation, message: str | None = None, status: int = 200,
          calls_form: CallRulesForm | None = None, calls_message: str | None = None, messaging: dict | None = None,
          test: dict | None = None, rule_list: dict | None = None):
    calls_form = calls_form or CallRulesForm(data=settings.load(CallRules).__dict__, formdata=None)
    response = current_app.make_response((render_template(
        "settings/index.html", form=form, message=message, groups=rfm.GROUPS, group_names=_group_names(config),
        last=segments.last_rebuild(), rebuild=_rebuild_state(), calls_form=calls_form, calls_message=calls_message,
        messaging=messaging or _messaging_view(), test=test or _test_view(), hooks=_hooks_view(),
        rule_list=rule_list or _rules_view()), status))
    # A refused channel form shows back what was typed, secrets included: keep it out of every cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def _page_of_section(status: int = 200, **section):
    """The whole settings page around one section's answer (forms without JavaScript)."""
    config = settings.load()
    return _page(_segmentation_form(config), config, status=status, **section)


@bp.get("")
@owner_only
def index():
    """Show the team's settings (owners only)."""
    config = settings.load()
    return _page(_segmentation_form(config), config)


@bp.post("/segmentation")
@owner_only
def segmentation():
    """Save how lapse and RFM are judged; unworkable values are refused on their field."""
    config = settings.load()
    form = _segmentation_form(config)
    if not form.validate():
        return _page(form, config, status=422)
    data = form.data
    for name in ("m2_amount", "m3_amount"):
        if not data[name].is_finite():
            attach_error(form, FieldError(name, _("Enter an amount.")))
            return _page(form, config, status=422)
    try:
        chosen = replace(
            config, business_type=data["business_type"], lapsing_days=data["lapsing_days"],
            lapsed_days=data["lapsed_days"], lapsing_factor=data["lapsing_factor"], lapsed_factor=data["lapsed_factor"],
            rfm_mode=data["rfm_mode"], r3_days=data["r3_days"], r2_days=data["r2_days"], f2_orders=data["f2_orders"],
            f3_orders=data["f3_orders"], m2_amount=int(data["m2_amount"] * 100), m3_amount=int(data["m3_amount"] * 100),
            group_names={key: name for key, name in _group_names(config).items() if name})
        if request.form.get("apply_business_type"):
            chosen = settings.with_business_type(chosen, data["business_type"])
        settings.save(chosen)
    except FieldError as error:
        db.session.rollback()
        attach_error(form, error)
        return _page(form, config, status=422)
    db.session.commit()
    return _page(_segmentation_form(chosen), chosen, _("Saved. The next rebuild applies the new settings."))


@bp.post("/calls")
@owner_only
def calls():
    """Save the call-back rules: the daily cap, the attempt limit and what follows it."""
    config = settings.load()
    segmentation_form = _segmentation_form(config)
    form = CallRulesForm()
    if not form.validate():
        return _page(segmentation_form, config, status=422, calls_form=form)
    try:
        settings.save(CallRules(**{name: form.data[name] for name in
                                   ("daily_cap", "attempt_limit", "after_attempts", "returned_within_days")}))
    except FieldError as error:
        db.session.rollback()
        attach_error(form, error)
        return _page(segmentation_form, config, status=422, calls_form=form)
    db.session.commit()
    return _page(segmentation_form, config, calls_form=form, calls_message=_("Saved."))


def _rebuild_state() -> dict:
    """What the rebuild started from here is doing: running (with step and percent), or idle."""
    job_id = redis.connection.get(JOB_KEY)
    if job_id:
        try:
            job = Job.fetch(job_id.decode(), connection=redis.connection)
            status = job.get_status(refresh=True)
            if status in ("queued", "started", "deferred", "scheduled"):
                return {"running": True, "step": job.meta.get("step", "queued"), "percent": job.meta.get("percent", 0)}
            if status == "failed":
                return {"running": False, "failed": True}
            result = job.return_value()
            if result and result.get("state") == "busy":
                return {"running": False, "busy": True}
        except NoSuchJobError:
            pass
    if segments.rebuild_running():
        return {"running": True, "step": "elsewhere", "percent": 0}
    return {"running": False}


@bp.post("/rebuild")
@owner_only
def rebuild():
    """Start a rebuild on the worker, unless one is running (then say so)."""
    state = _rebuild_state()
    message = None
    if state["running"]:
        message = _("A rebuild is already running; this one was not started.")
    else:
        job = redis.queue().enqueue(tasks.rebuild_segments, job_timeout=segments.LOCK_SECONDS, result_ttl=3600)
        redis.connection.set(JOB_KEY, job.id, ex=segments.LOCK_SECONDS)
        state = {"running": True, "step": "queued", "percent": 0}
    return render_template("settings/_rebuild.html", rebuild=state, last=segments.last_rebuild(), message=message)


@bp.get("/rebuild")
@owner_only
def rebuild_status():
    """The rebuild's progress bar; polled by the page while a rebuild runs."""
    return render_template("settings/_rebuild.html", rebuild=_rebuild_state(), last=segments.last_rebuild(),
                           message=None)


@bp.app_template_global()
def nightly_hour() -> int:
    return tasks.NIGHTLY_HOUR


# --- channels ------------------------------------------------------------------------------------

def _messaging_view(messaging: Messaging | None = None, typed: dict | None = None, errors: dict | None = None,
                    message: str | None = None) -> dict:
    """The channels section: per channel the current URLs, masked (never in full: they hold passwords
    and tokens), whether the environment sets them, and what was typed and refused."""
    messaging = messaging or settings.load(Messaging)
    typed = typed or {}
    rows = [{"key": channel, "label": channels.LABELS[channel], "env": channels.from_environment(channel),
             "shown": [channels.masked(url, channel) for url in channels.urls(channel, messaging)],
             "placeholder": channels.PLACEHOLDERS[channel], "typed": typed.get(f"urls_{channel}", ""),
             "remove": bool(typed.get(f"remove_{channel}")),
             "cost": typed.get(f"cost_{channel}") if f"cost_{channel}" in typed
             else _major_units(messaging.costs.get(channel, 0))} for channel in CHANNELS]
    return {"rows": rows, "fallback": typed.get("fallback") or messaging.fallback,
            "weekly_cap": typed.get("weekly_cap", messaging.weekly_cap), "errors": errors or {}, "message": message,
            "labels": channels.LABELS, "currency": current_app.config["TEAM_CURRENCY"]}


def _major_units(minor: int) -> str:
    """A cost as typed in the form: 5 -> "0.05" (in a currency of two decimals); nothing when not entered."""
    if not minor:
        return ""
    return str(Decimal(minor).scaleb(-get_currency_precision(current_app.config["TEAM_CURRENCY"])))


def _typed_channels() -> dict:
    typed = {f"urls_{channel}": request.form.get(f"urls_{channel}", "") for channel in CHANNELS}
    typed.update({f"remove_{channel}": request.form.get(f"remove_{channel}", "") for channel in CHANNELS})
    typed["fallback"] = tuple(request.form.getlist("fallback"))
    typed["weekly_cap"] = request.form.get("weekly_cap", "").strip()
    # A cost not posted at all is kept as it is (None); an empty one clears it.
    typed.update({f"cost_{channel}": request.form[f"cost_{channel}"].strip() for channel in CHANNELS
                  if f"cost_{channel}" in request.form})
    return typed


@bp.post("/channels")
@owner_only
def channels_save():
    """Save the channels' Apprise URLs, costs, the fallback order and the weekly cap; refusals go on their field."""
    typed = _typed_channels()
    messaging, errors = channels.from_form(settings.load(Messaging), typed)
    if errors:
        return _page_of_section(422, messaging=_messaging_view(messaging, typed, errors))
    settings.save(messaging)
    db.session.commit()
    return _page_of_section(messaging=_messaging_view(messaging, message=_("Saved.")))


def _test_view(channel: str = "", address: str = "", error: FieldError | None = None,
               message: str | None = None, outcomes: list | None = None) -> dict:
    return {"channel": channel, "address": address, "error": error, "message": message, "outcomes": outcomes,
            "configured": channels.configured(), "labels": channels.LABELS}


@bp.post("/channels/test")
@owner_only
def channels_test():
    """Send a test message through every URL of a channel and show each URL's outcome."""
    channel = request.form.get("test_channel", "")
    address = request.form.get("test_address", "").strip()
    error = message = outcomes = None
    if channel not in CHANNELS:
        error = FieldError("test_channel", _("Choose a channel."))
    elif not address or len(address) > 320:
        error = FieldError("test_address", _("Enter the address, number or chat id to send the test to."))
    elif not channels.urls(channel):
        message = _("No URLs are set for %(channel)s: add one above and save, then test it.",
                    channel=channels.LABELS[channel])
    else:
        outcomes = channels.send(channel, address, _("Test message"), _("This is a test from your CRM"))
    test = _test_view(channel, address, error, message, outcomes)
    status = 422 if error else 200
    if htmx:
        return render_template("settings/_test_send.html", test=test), status
    return _page_of_section(status, test=test)


# --- inbound hooks --------------------------------------------------------------------------------

def _hooks_view() -> list[dict]:
    """Where each channel's gateway posts replies and bounces, with the channel's shared secret."""
    base = current_app.config["PUBLIC_URL"]
    return [{"key": channel, "label": channels.LABELS[channel],
             "url": f"{base}/hooks/inbound/{channel}?secret={secret_for(channel)}"} for channel in CHANNELS]


# --- automatic enrolment rules --------------------------------------------------------------------

def _rules_view(typed: dict | None = None, error: FieldError | None = None, message: str | None = None) -> dict:
    names = settings.load()
    return {"rules": rules.listing(), "describe": rules.describe, "sequences": sequences.listing(),
            "triggers": rules.TRIGGERS, "with_days": rules.TRIGGERS_WITH_DAYS, "max_days": rules.MAX_DAYS,
            "groups": {key: names.group_name(key) for key in rfm.GROUPS}, "typed": typed or {}, "error": error,
            "message": message}


def _rules_response(status: int = 200, **view):
    rule_list = _rules_view(**view)
    if htmx:
        return render_template("settings/_rules.html", rule_list=rule_list), status
    return _page_of_section(status, rule_list=rule_list)


@bp.post("/rules")
@owner_only
def rule_add():
    """Add an automatic enrolment rule; a refusal goes on its field, with what was chosen kept."""
    typed = {"sequence_id": request.form.get("sequence_id", ""), "trigger": request.form.get("trigger", ""),
             "days": request.form.get("days", "").strip(), "groups": request.form.getlist("groups")}
    try:
        rule = rules.create_rule(typed["sequence_id"], typed["trigger"], typed["days"], typed["groups"])
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _rules_response(422, typed=typed, error=error)
    return _rules_response(message=_("Rule added: %(sequence)s, %(trigger)s.", sequence=rule.sequence.name,
                                     trigger=rules.describe(rule)))


@bp.post("/rules/<int:rule_id>/delete")
@owner_only
def rule_delete(rule_id: int):
    """Remove a rule; the customers it enrolled stay in their sequence."""
    if not rules.delete_rule(rule_id):
        abort(404)
    db.session.commit()
    return _rules_response(message=_("Rule removed. Customers it enrolled stay in their sequence."))


@bp.post("/rules/<int:rule_id>/toggle")
@owner_only
def rule_toggle(rule_id: int):
    """Pause a rule, or resume a paused one."""
    rule = rules.toggle_rule(rule_id)
    if rule is None:
        abort(404)
    db.session.commit()
    return _rules_response(message=_("Rule resumed.") if rule.active else _("Rule paused."))
