"""The owner's settings: the overview page, how segments and lapse are judged, and the rebuild."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from rq.exceptions import NoSuchJobError
from rq.job import Job
from wtforms import DecimalField, FloatField, IntegerField, RadioField, SelectField
from wtforms.validators import InputRequired

from crm import rfm, segments, settings, tasks
from crm.errors import FieldError
from crm.extensions import db, redis
from crm.settings import CallRules
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
          calls_form: CallRulesForm | None = None, calls_message: str | None = None):
    calls_form = calls_form or CallRulesForm(data=settings.load(CallRules).__dict__, formdata=None)
    return render_template("settings/index.html", form=form, message=message, groups=rfm.GROUPS,
                           group_names=_group_names(config), last=segments.last_rebuild(),
                           rebuild=_rebuild_state(), calls_form=calls_form, calls_message=calls_message), status


@bp.get("")
@owner_only
def index():
    """Show the team's settings (owners only)."""
    config = settings.load()
    return _page(_segmentation_form(config), config)[0]


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

