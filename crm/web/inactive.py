"""The inactive list: who was taken out of every mailing and queue, when and why; restoring a
customer (anyone, with a note), exporting the list and erasing personal data (owners)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm import exports, inactive
from crm.errors import FieldError
from crm.extensions import db
from crm.ids import as_id
from crm.models import Customer
from crm.web import partials
from crm.web.access import owner_only

bp = Blueprint("inactive", __name__, url_prefix="/inactive")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXPORT_COLUMNS = ("id", "name", "contacts", "inactive_since", "how", "reason", "orders", "ltv")


@bp.context_processor
def _labels() -> dict:
    return {"how_labels": inactive.HOW, "describe": inactive.describe}



def _cursor(customer: Customer) -> str | None:
    """Where the next page starts: the last row's (inactive_since, id), as microseconds and id."""
    since = customer.inactive_since
    if since is None:
        return None
    since = since if since.tzinfo else since.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return f"{(since - EPOCH) // timedelta(microseconds=1)}.{customer.id}"


def _before(raw: str | None) -> tuple[datetime, int] | None:
    """The cursor of a "more" link, or None for the first page (a mangled one starts over too)."""
    micros, _sep, ident = (raw or "").partition(".")
    if not (micros.isascii() and micros.isdigit()) or as_id(ident) is None:
        return None
    try:
        return EPOCH + timedelta(microseconds=int(micros)), as_id(ident)
    except OverflowError:
        return None


def _list_context(filters: inactive.Filters) -> dict:
    rows, more = inactive.page(filters, _before(request.args.get("after")))
    next_cursor = _cursor(rows[-1]) if more and rows else None
    return {"filters": filters, "args": filters.to_args(), "rows": rows, "next_cursor": next_cursor}


@bp.get("")
def index():
    """List the customers on the inactive list, most recently moved first; htmx gets the results alone."""
    filters = inactive.Filters.from_args(request.args)
    context = _list_context(filters)
    if partials.wanted() and request.args.get("after"):
        return render_template("inactive/_rows.html", **context)
    context["total"] = inactive.count(filters)
    if partials.wanted():
        return render_template("inactive/_results.html", **context)
    return render_template("inactive/index.html", **context)


def _customer_or_404(customer_id: int) -> Customer:
    ident = as_id(customer_id)  # a number past 64 bits would overflow the database driver
    return (db.session.get(Customer, ident) if ident else None) or abort(404)


def _filters_of_form() -> inactive.Filters:
    return inactive.Filters.from_args(request.form)


# --- restore ---------------------------------------------------------------------------------------

def _restore_form(customer: Customer, filters: inactive.Filters, note: str = "", error: str | None = None,
                  status: int = 200):
    """The restore form: inside the customer's row for htmx, else on a page of its own."""
    template = "inactive/_row.html" if partials.wanted() else "inactive/restore.html"
    return render_template(template, c=customer, restoring=True, note=note, error=error, args=filters.to_args()), status


@bp.get("/<int:customer_id>/restore")
def restore_form(customer_id: int):
    """Ask for the note a restore needs."""
    return _restore_form(_customer_or_404(customer_id), inactive.Filters.from_args(request.args))


@bp.get("/<int:customer_id>/row")
def row(customer_id: int):
    """One row of the list as it stands (what Cancel on the restore form returns to)."""
    customer = _customer_or_404(customer_id)
    args = inactive.Filters.from_args(request.args).to_args()
    if not partials.wanted():
        return redirect(url_for("inactive.index", **args))
    return render_template("inactive/_row.html", c=customer, args=args)


@bp.post("/<int:customer_id>/restore")
def restore(customer_id: int):
    """Bring a customer back to the active list, with a note on the timeline."""
    customer = _customer_or_404(customer_id)
    filters = _filters_of_form()
    note = request.form.get("note", "")
    try:
        inactive.restore(customer, note, current_user)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _restore_form(_customer_or_404(customer_id), filters, note, error.message, 422)
    message = _("%(name)s is back on the active list.", name=customer.name)
    if not partials.wanted():
        flash(message, "success")
        return redirect(url_for("inactive.index", **filters.to_args()))
    return render_template("inactive/_restored.html", c=customer, message=message, total=inactive.count(filters))


# --- export and erase (owners) ---------------------------------------------------------------------

@bp.get("/export.csv")
@owner_only
def export():
    """Download the inactive list under the current filters as CSV (owners only)."""
    filters = inactive.Filters.from_args(request.args)
    return current_app.response_class(
        stream_with_context(exports.rows_csv(EXPORT_COLUMNS, inactive.export_rows(filters))),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="inactive.csv"', "Cache-Control": "no-store"},
    )


@bp.get("/<int:customer_id>/erase")
@owner_only
def erase_confirm(customer_id: int):
    """Show what erasing removes and what stays, and ask to confirm by typing the customer's number."""
    return render_template("inactive/erase.html", c=_customer_or_404(customer_id), typed="", error=None)


@bp.post("/<int:customer_id>/erase")
@owner_only
def erase(customer_id: int):
    """Remove a customer's personal data for good (owners only, confirmed by typing their number)."""
    customer = _customer_or_404(customer_id)
    typed = request.form.get("confirm_id", "").strip()[:30]
    try:
        if typed.lstrip("#") != str(customer.id):
            raise FieldError("confirm_id", _("Type the customer's number, %(id)s, to confirm.", id=customer.id))
        inactive.erase(customer, current_user)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return render_template("inactive/erase.html", c=_customer_or_404(customer_id), typed=typed,
                               error=error), 422
    flash(_("The personal data of customer #%(id)s is erased; their orders stay in the figures, anonymous.",
            id=customer_id), "success")
    return redirect(url_for("inactive.index"))
