"""Customers: the list with search and filters, the card with inline edits, new, merge, export."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from crm import (
    accounts,
    clock,
    customer_list,
    customers,
    exports,
    lapsed,
    responses,
    rfm,
    sequences,
    settings,
    timeline,
)
from crm.errors import FieldError, StaleEdit
from crm.extensions import db
from crm.figures import FAVOURITES, days_since
from crm.models import CallBack, ContactKind, Customer, Stage
from crm.web import formatting, partials
from crm.web.access import owner_only
from crm.web.customer_forms import (
    CHANNEL_LABELS,
    GENDER_LABELS,
    ORDER_STATUS_LABELS,
    OUTCOME_LABELS,
    REASON_LABELS,
    STATUS_LABELS,
    CallForm,
    NewCustomerForm,
    field_spec,
    stage_name,
    team_choices,
)
from crm.web.forms import as_date
from crm.web.segments import BEHAVIOUR_LABELS, cell_label

bp = Blueprint("customers", __name__, url_prefix="/customers")

# Filters shown folded under "More filters" unless one of them is in use.
MORE_FILTERS = {"rfm", "rfm_group", "behaviour", "gender", "age_from", "age_to", "spend_from", "spend_to",
                "orders_from", "orders_to", "first_from", "first_to", "bought_from", "bought_to", "product",
                "category"}


@bp.context_processor
def _labels() -> dict:
    return {"status_labels": STATUS_LABELS, "channel_labels": CHANNEL_LABELS, "reason_labels": REASON_LABELS,
            "outcome_labels": OUTCOME_LABELS, "order_status_labels": ORDER_STATUS_LABELS, "stage_name": stage_name,
            "kinds": ContactKind, "days_since": days_since, "stage_label": _stage_label,
            "field_labels": {name: spec.label for name, spec in field_spec().items()},
            "skip_labels": sequences.SKIP_REASONS, "response_labels": responses.LABELS}


def _stage_label(stage_id) -> str:
    """A stage's name for the timeline (a deleted stage shows as its old number)."""
    stage = db.session.get(Stage, stage_id) if stage_id else None
    return stage_name(stage) if stage else (f"#{stage_id}" if stage_id else "—")


def _customer_or_404(customer_id: int) -> Customer:
    return db.session.get(Customer, customer_id) or abort(404)



def _row_views(found: list[customer_list.Row]) -> list[dict]:
    """Turn a page of customers into ready-made strings: a page is hundreds of formatted values,
    so translations are looked up once and Babel's output is cached (see crm.web.formatting)."""
    locale, tz = str(get_locale()), current_app.config["TEAM_TIMEZONE"]
    currency = current_app.config["TEAM_CURRENCY"]
    statuses = {key: str(label) for key, label in STATUS_LABELS.items()}
    days_ago, select_label, no_orders = _("%(n)d days ago"), _("Select %(name)s"), _("no orders")
    today = clock.team_today()
    rows = []
    for c in found:
        phone, email = c.phone, c.email
        last = formatting.local_date(c.last_order_at, tz) if c.last_order_at else None
        rows.append({
            "id": c.id, "name": c.name, "tags": c.tags[:3], "select_label": select_label % {"name": c.name},
            "phone": formatting.phone(phone) if phone else "", "email": email or "", "city": c.city or "",
            "status": c.status.value, "status_label": statuses[c.status.value],
            "manager": c.manager or "", "orders": c.order_count,
            "ltv": formatting.money(c.total_spent, currency, locale),
            "last": formatting.day(last, locale) if last else "",
            "since": days_ago % {"n": (today - last).days} if last else no_orders,
        })
    return rows


def _list_context(filters: customer_list.Filters) -> dict:
    page = customer_list.page(filters, request.args.get("after"))
    return {
        "filters": filters,
        "page": page,
        "rows": _row_views(customer_list.rows(page.ids)),
        "stages": db.session.scalars(select(Stage).order_by(Stage.position)).all(),
        "team": accounts.active_team(),
        "today": clock.team_today(),
    }


def _filter_choices(filters: customer_list.Filters) -> dict:
    """The choices of the segment filters, only needed by the whole page (not by the results alone)."""
    names = settings.load()
    return {
        "more_filters": not MORE_FILTERS.isdisjoint(filters.to_args()),
        "rfm_groups": [(key, names.group_name(key)) for key in rfm.GROUPS],
        "rfm_cells": [(cell, f"{cell_label(cell)} · {names.group_name(rfm.group_of(cell))}") for cell in rfm.CELLS],
        "behaviour_labels": BEHAVIOUR_LABELS, "gender_labels": GENDER_LABELS, "favourites": FAVOURITES,
    }


@bp.get("")
def index():
    """List customers, filtered and searched; htmx gets the results alone."""
    filters = customer_list.Filters.from_args(request.args)
    context = _list_context(filters)
    if partials.wanted():
        template = "customers/_rows.html" if request.args.get("after") else "customers/_results.html"
        return render_template(template, **context)
    return render_template("customers/index.html", **context, **_filter_choices(filters))


@bp.get("/count")
def count():
    """Count the customers matching the filters (up to a cap), loaded after the list."""
    filters = customer_list.Filters.from_args(request.args)
    if not partials.wanted():
        return redirect(url_for("customers.index", **filters.to_args()))
    total, capped = customer_list.count(filters)
    return render_template("customers/_count.html", total=total, capped=capped, filters=filters)


@bp.route("/new", methods=["GET", "POST"])
def new():
    """Add a customer; a duplicate email or phone links to the existing card instead."""
    form = NewCustomerForm()
    form.manager_id.choices = team_choices()
    duplicate = None
    if form.validate_on_submit():
        try:
            data = form.to_input()
            duplicate = customers.find_duplicate(data, current_app.config["TEAM_COUNTRY"])
            if duplicate is None:
                customer = customers.create_customer(data, current_user, current_app.config["TEAM_COUNTRY"])
                db.session.commit()
                return redirect(url_for("customers.card", customer_id=customer.id))
        except FieldError as error:
            db.session.rollback()
            form.attach(error)
    status = 422 if request.method == "POST" else 200
    return render_template("customers/new.html", form=form, duplicate=duplicate), status


def _card_context(customer: Customer, editing: str | None = None) -> dict:
    return {
        "customer": customer,
        "editing": editing,
        "fields": field_spec(),
        "orders": timeline.orders_page(customer.id),
        "entries": timeline.entries_page(customer.id),
        "call_form": CallForm(),
        "today": clock.team_today(),
        "rfm_group": settings.load().group_name(rfm.group_of(customer.rfm)) if customer.rfm else None,
        "open_callback": db.session.scalar(select(CallBack).where(CallBack.customer_id == customer.id,
                                                                  CallBack.done_at.is_(None))),
        "team": accounts.active_team(),
    }


@bp.get("/<int:customer_id>")
def card(customer_id: int):
    """Show the customer card."""
    return render_template("customers/card.html", **_card_context(_customer_or_404(customer_id)))


def _spec_or_404(name: str):
    spec = field_spec().get(name)
    if spec is None:
        abort(404)
    return spec


@bp.get("/<int:customer_id>/fields/<name>")
def show_field(customer_id: int, name: str):
    """Show one contact field as text (also what Cancel returns to)."""
    customer, spec = _customer_or_404(customer_id), _spec_or_404(name)
    if not partials.wanted():
        return render_template("customers/card.html", **_card_context(customer))
    return render_template("customers/_field.html", customer=customer, spec=spec)


@bp.get("/<int:customer_id>/fields/<name>/edit")
def edit_field(customer_id: int, name: str):
    """Open one field for editing in place."""
    customer, spec = _customer_or_404(customer_id), _spec_or_404(name)
    if not partials.wanted():
        return render_template("customers/card.html", **_card_context(customer, editing=name))
    return render_template("customers/_field_form.html", customer=customer, spec=spec,
                           value=spec.current(customer), version=customer.version)


@bp.post("/<int:customer_id>/fields/<name>")
def save_field(customer_id: int, name: str):
    """Save one field; errors come back on the field, a stale page is told to reload."""
    customer, spec = _customer_or_404(customer_id), _spec_or_404(name)
    raw = request.form.get("value", "")
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        version = None
    try:
        customers.set_field(customer, name, raw, version, current_user, current_app.config["TEAM_COUNTRY"])
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _field_error(customer_id, spec, raw, version, error.message, 422)
    except (StaleEdit, StaleDataError):
        db.session.rollback()
        message = _("Someone else changed this customer meanwhile. Reload the page to see their change.")
        return _field_error(customer_id, spec, raw, version, message, 409)
    if not partials.wanted():
        return redirect(url_for("customers.card", customer_id=customer.id))
    response = current_app.make_response(render_template("customers/_field.html", customer=customer, spec=spec))
    # The timeline and the header show edits too; they refresh themselves on this event.
    response.headers["HX-Trigger"] = "customer-changed"
    return response


def _field_error(customer_id, spec, raw, version, message, status):
    customer = _customer_or_404(customer_id)
    if not partials.wanted():
        context = _card_context(customer, editing=spec.name)
        context["field_error"] = message
        context["field_value"] = raw  # what the user typed stays in the field
        return render_template("customers/card.html", **context), status
    return render_template("customers/_field_form.html", customer=customer, spec=spec, value=raw,
                           version=version, error=message, stale=status == 409), status


@bp.get("/<int:customer_id>/header")
def header(customer_id: int):
    """Return the card's header (refreshed after edits)."""
    customer = _customer_or_404(customer_id)  # first: a missing customer is 404, not a redirect to one
    if not partials.wanted():
        return redirect(url_for("customers.card", customer_id=customer.id))
    return render_template("customers/_header.html", customer=customer, today=clock.team_today())


@bp.get("/<int:customer_id>/timeline")
def show_timeline(customer_id: int):
    """Return the timeline, or its next page when `before` is given."""
    customer = _customer_or_404(customer_id)
    if not partials.wanted():
        return redirect(url_for("customers.card", customer_id=customer.id))
    before = request.args.get("before", type=int)
    entries = timeline.entries_page(customer.id, before)
    if before:
        return render_template("customers/_timeline_entries.html", customer=customer, entries=entries)
    return render_template("customers/_timeline.html", customer=customer, entries=entries, call_form=CallForm())


@bp.get("/<int:customer_id>/orders")
def show_orders(customer_id: int):
    """Return the next page of the order history."""
    customer = _customer_or_404(customer_id)
    if not partials.wanted():
        return redirect(url_for("customers.card", customer_id=customer.id))
    orders = timeline.orders_page(customer.id, request.args.get("before", type=int))
    return render_template("customers/_order_rows.html", customer=customer, orders=orders)


@bp.post("/<int:customer_id>/notes")
def add_note(customer_id: int):
    """Add a note to the timeline."""
    customer = _customer_or_404(customer_id)
    error = None
    try:
        customers.add_note(customer, request.form.get("body", ""), current_user)
        db.session.commit()
    except FieldError as exc:
        error = exc.message
    return _timeline_response(customer, note_error=error)


@bp.post("/<int:customer_id>/calls")
def log_call(customer_id: int):
    """Log a phone call with its outcome."""
    customer = _customer_or_404(customer_id)
    form = CallForm()
    if form.validate_on_submit():
        customers.log_call(customer, form.outcome.data, form.note.data, current_user)
        db.session.commit()
        form = CallForm(formdata=None)
    return _timeline_response(customer, call_form=form)


def _timeline_response(customer: Customer, note_error: str | None = None, call_form: CallForm | None = None):
    if not partials.wanted():
        return redirect(url_for("customers.card", customer_id=customer.id))
    failed = note_error or (call_form is not None and call_form.errors)
    return render_template("customers/_timeline.html", customer=customer, note_error=note_error,
                           entries=timeline.entries_page(customer.id), call_form=call_form or CallForm(),
                           note_value=request.form.get("body", "") if note_error else ""), 422 if failed else 200


@bp.get("/<int:customer_id>/merge")
def merge(customer_id: int):
    """Find the duplicate to fold into this customer."""
    customer = _customer_or_404(customer_id)
    q = (request.args.get("q") or "").strip()
    candidates = []
    if q:
        filters = customer_list.Filters(q=q, sort="name", desc=False)
        candidates = [c for c in customer_list.page(filters, size=20).customers if c.id != customer.id]
    other = None
    if request.args.get("other", type=int):
        other = db.session.get(Customer, request.args.get("other", type=int))
        if other is None or other.id == customer.id:
            abort(404)
    return render_template("customers/merge.html", customer=customer, q=q, candidates=candidates, other=other)


@bp.post("/<int:customer_id>/merge")
def do_merge(customer_id: int):
    """Merge the chosen duplicate into this customer."""
    customer = _customer_or_404(customer_id)
    other = _customer_or_404(request.form.get("other", type=int) or 0)
    if other.id == customer.id:
        abort(400)
    customers.merge(customer, other, current_user)
    db.session.commit()
    return redirect(url_for("customers.card", customer_id=customer.id))


def _bulk(action):
    """Run a bulk action on the ticked customers; its message shows beside the bulk bar."""
    filters = customer_list.Filters.from_args(request.form)
    if not filters.ids:
        abort(400)
    try:
        message = action(filters.ids)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        message = error.message
    if not partials.wanted():
        flash(message, "info")
        return redirect(url_for("customers.index"))
    return render_template("customers/_bulk_result.html", message=message)


@bp.post("/bulk/manager")
def bulk_manager():
    """Assign the selected customers to a manager (or to nobody)."""
    return _bulk(lambda ids: _("%(n)d customers assigned.", n=customers.assign_manager(
        ids, request.form.get("manager_id") or None, current_user)))


@bp.post("/bulk/callbacks")
def bulk_callbacks():
    """Put the selected customers in a call-back queue for a day (one manager's, or shared out)."""
    return _bulk(lambda ids: _("%(n)d customers added to the call-back queue.", n=lapsed.assign_callbacks(
        ids, request.form.get("manager_id"), as_date(request.form.get("day")), current_user)))


@bp.get("/export.csv")
@owner_only
def export():
    """Download the customers of the current list view as CSV (owners only)."""
    filters = customer_list.Filters.from_args(request.args)
    return current_app.response_class(
        stream_with_context(exports.customers_csv(customer_list.iter_all(filters))),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="customers.csv"', "Cache-Control": "no-store"},
    )
