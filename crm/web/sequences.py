"""Reactivation sequences: the list, the editor with a live preview on a real customer, the figures
per sequence and per step, and enrolling customers from a card, the customers list, a lapsed queue
or a saved segment (and stopping a customer's running sequence)."""

from __future__ import annotations

from babel.dates import get_day_names
from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import format_decimal, format_percent, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select

from crm import clock, customer_list, enrolment, lapsed, message_templates, saved_segments, sequences, settings
from crm.errors import FieldError
from crm.extensions import db
from crm.ids import as_id, as_ids
from crm.models import Customer, Message, MessageState, Segment, Sequence, StepChannel
from crm.models.sequence import LENGTHS
from crm.settings import Messaging
from crm.web import partials
from crm.web.access import owner_only
from crm.web.customer_forms import CHANNEL_LABELS

bp = Blueprint("sequences", __name__, url_prefix="/sequences")

STEP_CHANNELS = {StepChannel.PREFERRED.value: _l("Preferred channel, then the fallback order"),
                 **{c.value: CHANNEL_LABELS[c.value] for c in StepChannel if c is not StepChannel.PREFERRED}}
SOURCES = ("card", "bulk", "segment", "lapsed")
# Where each kind of enrolment came from, and (without JavaScript) which page to go back to.
TARGET_SOURCES = {"ids": "bulk", "segment": "segment", "queue": "lapsed"}
MAX_IDS = 10_000
PREVIEW_CUSTOMERS = 20
STOP_REASON = "stopped"


@bp.context_processor
def _labels() -> dict:
    return {"step_channels": STEP_CHANNELS, "lengths": LENGTHS, "fields": message_templates.FIELDS,
            "skip_reasons": sequences.SKIP_REASONS, "not_enrolled": enrolment.NOT_ENROLLED}



def _sequence_or_404(sequence_id: int) -> Sequence:
    return db.session.get(Sequence, sequence_id) or abort(404)


# --- list and new ----------------------------------------------------------------------------------

def _index_page(error: FieldError | None = None, name: str = "", length: int = 5, status: int = 200):
    return render_template("sequences/index.html", sequences=sequences.listing(), running=sequences.running_counts(),
                           error=error, name=name, length=length), status


@bp.get("")
def index():
    """List the sequences with their running enrolments; owners start a new one here."""
    return _index_page()


@bp.post("")
@owner_only
def create():
    """Start a sequence from the 3-, 5- or 7-step template and open it in the editor."""
    name = request.form.get("name", "")
    length = as_id(request.form.get("length")) or 0
    try:
        sequence = sequences.create(length, name, current_user)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _index_page(error, name, length if length in LENGTHS else 5, 422)
    flash(_("Sequence “%(name)s” created from the %(n)d-step template. Adjust the texts, then enrol customers.",
            name=sequence.name, n=sequence.length), "success")
    return redirect(url_for("sequences.edit", sequence_id=sequence.id))


# --- editor ------------------------------------------------------------------------------------------

def _input_of(sequence: Sequence) -> sequences.SequenceInput:
    """The editor's values as the sequence stands."""
    return sequences.SequenceInput(
        name=sequence.name, window_start=str(sequence.window_start), window_end=str(sequence.window_end),
        weekdays=[str(day) for day in sequence.weekdays or []], grace_days=str(sequence.grace_days),
        holdout_percent=str(sequence.holdout_percent), return_days=str(sequence.return_days),
        link_url=sequence.link_url or "", discount_code=sequence.discount_code or "",
        steps=[sequences.StepInput(delay_days=str(step.delay_days), delay_hours=str(step.delay_hours),
                                   channel=step.channel.value, subject=step.subject, body=step.body)
               for step in sequence.steps])


def _input_from_form(sequence: Sequence) -> sequences.SequenceInput:
    """The editor's values as posted (what the user typed stays in the form when it is refused)."""
    form = request.form
    return sequences.SequenceInput(
        name=form.get("name", ""), window_start=form.get("window_start", ""), window_end=form.get("window_end", ""),
        weekdays=form.getlist("weekdays"), grace_days=form.get("grace_days", ""),
        holdout_percent=form.get("holdout_percent", ""), return_days=form.get("return_days", ""),
        link_url=form.get("link_url", ""), discount_code=form.get("discount_code", ""),
        steps=[sequences.StepInput(**{key: form.get(f"step-{position}-{key}", "") for key in
                                      ("delay_days", "delay_hours", "channel", "subject", "body")})
               for position in range(1, sequence.length + 1)])


def _editor(sequence: Sequence, values: sequences.SequenceInput, error: FieldError | None = None,
            status: int = 200):
    names = get_day_names("wide", locale=get_locale())
    weekdays = [(str(iso), names[iso - 1]) for iso in range(1, 8)]
    return render_template("sequences/edit.html", sequence=sequence, values=values, error=error, weekdays=weekdays,
                           preview_customers=_preview_customers("")), status


@bp.get("/<int:sequence_id>/edit")
@owner_only
def edit(sequence_id: int):
    """Open the editor: the sequence's settings, its steps and a live preview of each."""
    sequence = _sequence_or_404(sequence_id)
    return _editor(sequence, _input_of(sequence))


@bp.post("/<int:sequence_id>/edit")
@owner_only
def save(sequence_id: int):
    """Save the editor; a refusal comes back on its field with everything typed kept."""
    sequence = _sequence_or_404(sequence_id)
    values = _input_from_form(sequence)
    try:
        sequences.update(sequence, values)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _editor(_sequence_or_404(sequence_id), values, error, 422)
    flash(_("Sequence saved."), "success")
    return redirect(url_for("sequences.edit", sequence_id=sequence.id))


@bp.post("/<int:sequence_id>/pause")
@owner_only
def pause(sequence_id: int):
    """Pause a sequence (nothing more is sent, nobody new goes in) or resume it."""
    sequence = _sequence_or_404(sequence_id)
    sequences.set_paused(sequence, request.form.get("paused") == "1")
    db.session.commit()
    flash(_("“%(name)s” is paused: no messages go out until you resume it.", name=sequence.name) if sequence.paused
          else _("“%(name)s” is running again.", name=sequence.name), "info")
    back = request.form.get("back")
    return redirect(url_for("sequences.edit" if back == "edit" else "sequences.show", sequence_id=sequence.id))


# --- preview ------------------------------------------------------------------------------------------

def _preview_customers(q: str) -> list[Customer]:
    filters = customer_list.Filters(q=q.strip()[:100], sort="name", desc=False)
    return customer_list.page(filters, size=PREVIEW_CUSTOMERS).customers


@bp.get("/<int:sequence_id>/preview/customers")
@owner_only
def preview_customers(sequence_id: int):
    """The customers to preview on, searched by name (the options of the picker)."""
    sequence = _sequence_or_404(sequence_id)
    if not partials.wanted():
        return redirect(url_for("sequences.edit", sequence_id=sequence.id))
    response = make_response(render_template("sequences/_preview_customers.html",
                                             preview_customers=_preview_customers(request.args.get("q", ""))))
    # The previews follow the customer now first in the picker.
    response.headers["HX-Trigger"] = "preview-customer"
    return response


def _sample_values() -> dict:
    """What the fields hold when there is no customer to preview on: their own descriptions."""
    return {name: f"[{label}]" for name, label in message_templates.FIELDS.items()}


@bp.post("/<int:sequence_id>/preview")
@owner_only
def preview(sequence_id: int):
    """Render one step, as typed, for the chosen customer (escaped text; links are examples)."""
    sequence = _sequence_or_404(sequence_id)
    position = as_id(request.form.get("step"))
    step = sequence.step(position or 0)
    if step is None:
        abort(400)
    subject = request.form.get(f"step-{position}-subject", step.subject)
    body = request.form.get(f"step-{position}-body", step.body)
    customer = db.session.get(Customer, as_id(request.form.get("preview_customer")) or 0)
    public = current_app.config["PUBLIC_URL"]
    if customer is None:
        values = _sample_values()
        values["unsubscribe"] = public + "/u/preview"
        values["link"] = public + "/l/preview"
    else:
        values = message_templates.context(customer, sequence, clock.team_today(), public + "/l/preview",
                                           public + "/u/preview")
    if "discount_code" in request.form:
        values["discount_code"] = request.form["discount_code"].strip()
    rendered, error = None, None
    try:
        message_templates.check(subject, body)
        rendered = message_templates.render(subject, body, values)
    except FieldError as refused:
        error = refused
    return render_template("sequences/_preview.html", rendered=rendered, error=error, customer=customer,
                           position=position)


# --- figures ------------------------------------------------------------------------------------------

def _percent(value: float | None) -> str:
    return format_percent(value, format="#,##0.0%") if value is not None else "—"


def _funnel(figures: sequences.Figures) -> dict:
    """Bars for an inline SVG (no script, no inline style): per step, messages sent and clicked,
    against everyone messaged."""
    label_width, width, row, bar = 80, 420, 30, 11
    top = max([figures.enrolled] + [step.sent for step in figures.steps] + [1])
    scale = (width - label_width - 10) / top
    rows = []
    for i, step in enumerate(figures.steps):
        y = i * row
        rows.append({"position": step.position, "y": y, "sent": step.sent, "clicked": step.clicked,
                     "sent_width": round(step.sent * scale, 1), "clicked_width": round(step.clicked * scale, 1),
                     "label_y": y + bar + 2, "clicked_y": y + bar + 2})
    return {"width": width, "height": max(len(rows) * row, row), "x": label_width, "bar": bar, "rows": rows}


def _skipped_by_label(step: sequences.StepFigures) -> list[tuple[str, int]]:
    """A step's skipped messages by reason as shown (several codes share one label), largest first."""
    shown: dict[str, int] = {}
    for code, count in step.skipped.items():
        label = str(sequences.SKIP_REASONS.get(code, _l("other")))
        shown[label] = shown.get(label, 0) + count
    return sorted(shown.items(), key=lambda entry: -entry[1])


@bp.get("/<int:sequence_id>")
def show(sequence_id: int):
    """The sequence's figures: who went in, who answered and came back, per step, and the lift."""
    sequence = _sequence_or_404(sequence_id)
    figures = sequences.figures(sequence)
    lift = figures.lift
    return render_template(
        "sequences/show.html", sequence=sequence, figures=figures, funnel=_funnel(figures),
        skipped={step.position: _skipped_by_label(step) for step in figures.steps},
        return_rate=_percent(figures.return_rate), held_return_rate=_percent(figures.held_return_rate),
        lift=format_decimal(lift, format="+#,##0.0;-#,##0.0") if lift is not None else None,
        uncertain=sequences.uncertain(sequence))


@bp.post("/<int:sequence_id>/uncertain/<int:message_id>")
@owner_only
def review(sequence_id: int, message_id: int):
    """Settle a message that may or may not have gone out: count it as sent, or send it again."""
    message = db.session.get(Message, message_id)
    if message is None or message.sequence_id != sequence_id:
        abort(404)
    try:
        sequences.review(message, request.form.get("decision", ""), current_user)
        db.session.commit()
        flash(_("Counted as sent.") if message.state is MessageState.SENT else
              _("Queued again: it goes out with the next dispatch."))
    except FieldError as error:
        db.session.rollback()
        flash(error.message, "error")
    return redirect(url_for("sequences.show", sequence_id=sequence_id) + "#uncertain")


# --- enrolling ---------------------------------------------------------------------------------------

@bp.app_template_global()
def enrol_choices() -> list[Sequence]:
    """The sequences customers can be put into now (paused ones take nobody)."""
    return [sequence for sequence in sequences.listing() if not sequence.paused]


@bp.app_template_global()
def enrol_panel(customer: Customer) -> dict:
    """What a card's sequence panel shows: the running enrolment, or where the customer may go and why not."""
    running = enrolment.active_enrolment(customer.id)
    if running is not None:
        return {"running": running}
    messaging = settings.load(Messaging)
    every = sequences.listing()
    reasons = enrolment.reasons(customer, [sequence for sequence in every if not sequence.paused], messaging)
    available = [sequence for sequence, why in reasons if why is None]
    refused = [(sequence, why) for sequence, why in reasons if why is not None]
    # A reason about the customer (do-not-contact, answered...) holds for every sequence: say it once.
    blocked = refused[0][1] if refused and not available and len({why for _s, why in refused}) == 1 else None
    return {"running": None, "available": available, "refused": refused, "blocked": blocked,
            "any": bool(every)}


def _report_message(report: enrolment.Report) -> str:
    skipped = sum(report.skipped.values())
    message = _("Enrolled %(enrolled)d, held out %(held)d, not enrolled %(skipped)d.", enrolled=report.enrolled,
                held=report.held_out, skipped=skipped)
    if skipped:
        reasons = "; ".join(_("%(reason)s: %(n)d", reason=enrolment.NOT_ENROLLED.get(key, key), n=n)
                            for key, n in report.skipped.most_common())
        message = f"{message} ({reasons})"
    return message


def _whom() -> tuple[str, list[int] | Select]:
    """Which customers the request names: ticked ids, a saved segment, or a whole lapsed queue."""
    values = request.values
    target = values.get("target") or ("ids" if values.getlist("customer_ids") or values.getlist("ids") else
                                      "queue" if values.get("lapse") else "segment" if values.get("segment") else "")
    if target == "ids":
        ids = as_ids(values.getlist("customer_ids") + values.getlist("ids"))
        if not ids:
            raise FieldError("customer_ids", _("Tick at least one customer."))
        if len(ids) > MAX_IDS:
            raise FieldError("customer_ids", _("Choose at most %(n)d customers at a time.", n=MAX_IDS))
        return target, ids
    if target == "segment":
        segment = db.session.get(Segment, as_id(values.get("segment")) or 0)
        if segment is None:
            raise FieldError("segment", _("That saved segment no longer exists."))
        return target, saved_segments.customer_ids_query(segment)
    if target == "queue":
        return target, lapsed.queue_ids(lapsed.QueueFilters.from_args(values))
    raise FieldError("customer_ids", _("Choose whom to enrol."))


def _source(target: str) -> str:
    source = request.values.get("source", "")
    return source if source in SOURCES else TARGET_SOURCES.get(target, "bulk")


def _back(source: str, customer_id: int | None):
    """Where a page without JavaScript goes after enrolling: back to where the button was."""
    if source == "card" and customer_id:
        return url_for("customers.card", customer_id=customer_id)
    if source == "lapsed":
        return url_for("lapsed.index", **lapsed.QueueFilters.from_args(request.values).to_args())
    if source == "segment":
        return url_for("segments.index")
    return url_for("customers.index")


def _card_panel(customer: Customer, message: str, ok: bool, status: int = 200):
    response = make_response(render_template("customers/_enrol.html", customer=customer, message=message, ok=ok),
                             status)
    # The card's header (status) and timeline show the change too; they refresh on this event.
    response.headers["HX-Trigger"] = "customer-changed"
    return response


def _enrol(sequence: Sequence | None):
    target, source, ok = "", "bulk", False
    try:
        if sequence is None:
            raise FieldError("sequence_id", _("Choose a sequence."))
        target, whom = _whom()
        source = _source(target)
        report = enrolment.enrol(sequence, whom, source, current_user)
        db.session.commit()
        message, ok = _report_message(report), True
    except FieldError as error:
        db.session.rollback()
        source = _source(target)
        message = error.message
    except enrolment.SequencePaused:
        db.session.rollback()
        source = _source(target)
        message = _("“%(name)s” is paused: resume it before enrolling anyone.", name=sequence.name)
    card_customer = None
    if source == "card":
        ids = as_ids(request.values.getlist("customer_ids"))
        card_customer = db.session.get(Customer, ids[0]) if len(ids) == 1 else None
    if not partials.wanted():
        flash(message, "success" if ok else "error")
        return redirect(_back(source, card_customer.id if card_customer else None))
    if card_customer is not None:
        return _card_panel(card_customer, message, ok, 200 if ok else 422)
    response = make_response(render_template("sequences/_enrol_result.html", message=message, ok=ok),
                             200 if ok else 422)
    if ok:
        # A lapsed queue drops who went in; a list showing statuses may refresh.
        response.headers["HX-Trigger"] = "sequence-enrolled"
    return response


@bp.post("/<int:sequence_id>/enrol")
def enrol(sequence_id: int):
    """Enrol customers in this sequence: ticked ids, a saved segment, or a whole lapsed queue."""
    return _enrol(_sequence_or_404(sequence_id))


@bp.post("/enrol")
def enrol_chosen():
    """Enrol customers in the sequence picked in the form (card, bulk bar, lapsed queue, segment)."""
    return _enrol(db.session.get(Sequence, as_id(request.values.get("sequence_id")) or 0))


@bp.post("/stop/<int:customer_id>")
def stop(customer_id: int):
    """Take a customer out of their running sequence; nothing more is sent to them."""
    customer = db.session.get(Customer, customer_id) or abort(404)
    stopped = enrolment.stop(customer, STOP_REASON, current_user)
    db.session.commit()
    message = (_("Stopped “%(name)s” for this customer.", name=stopped.sequence.name) if stopped
               else _("The customer is not in a running sequence any more."))
    if not partials.wanted():
        flash(message, "info" if stopped else "error")
        return redirect(url_for("customers.card", customer_id=customer.id))
    return _card_panel(customer, message, stopped is not None)
