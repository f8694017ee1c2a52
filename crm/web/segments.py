"""Segments: saved filters of the customers list, the RFM grid and the behaviour classes."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_date, get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from crm import customer_list, rfm, saved_segments, segments, settings
from crm.errors import FieldError
from crm.extensions import db
from crm.figures import FAVOURITES
from crm.models import Behaviour, RfmCell, Segment, Stage, User
from crm.web import formatting, partials
from crm.web.customer_forms import GENDER_LABELS, STATUS_LABELS, stage_name

bp = Blueprint("segments", __name__, url_prefix="/segments")

BEHAVIOUR_LABELS = {
    Behaviour.FREQUENT.value: _l("Frequent"),
    Behaviour.PERIODIC.value: _l("Periodic"),
    Behaviour.STOPPED.value: _l("Were frequent and stopped"),
    Behaviour.RARE.value: _l("Rare"),
    Behaviour.ONE_OFF.value: _l("One-off"),
}
BEHAVIOUR_EXPLANATIONS = {
    Behaviour.FREQUENT.value: _l("Three or more orders, usually under a month apart."),
    Behaviour.PERIODIC.value: _l("Three or more orders at a steady rhythm of one to four months."),
    Behaviour.STOPPED.value: _l("Bought frequently, now far overdue against their own rhythm: worth calling."),
    Behaviour.RARE.value: _l("Two orders, or orders more than four months apart."),
    Behaviour.ONE_OFF.value: _l("A single order."),
}
SHADES = 5  # the grid's cells are shaded by fifths of the busiest cell


def cell_label(cell: int) -> str:
    return "R{} F{} M{}".format(*rfm.split(cell))


def _money(minor: int) -> str:
    return formatting.money(minor, current_app.config["TEAM_CURRENCY"], str(get_locale()))



# --- saved segments -------------------------------------------------------------------------------

def _segment_or_404(segment_id: int) -> Segment:
    return db.session.get(Segment, segment_id) or abort(404)


def _changeable_or_403(segment_id: int) -> Segment:
    segment = _segment_or_404(segment_id)
    if not saved_segments.may_change(segment, current_user):
        abort(403)
    return segment


@bp.context_processor
def _helpers() -> dict:
    return {"may_change": saved_segments.may_change}


def _describe(filters: list[customer_list.Filters]) -> list[list[str]]:
    # Stage and manager names are looked up once for the whole page.
    stages = {s.id: stage_name(s) for s in db.session.scalars(select(Stage))}
    team = {u.id: u.name for u in db.session.scalars(select(User))}
    return [summary(f, stages, team) for f in filters]


def _summaries(found: list[Segment]) -> dict[int, list[str]]:
    return dict(zip((s.id for s in found), _describe([saved_segments.filters_of(s) for s in found]), strict=True))


def _new_page(filters: customer_list.Filters, value: str = "", error: str | None = None, field: str | None = None,
              status: int = 200):
    return render_template("segments/new.html", filters=filters, summary=_describe([filters])[0], value=value,
                           error=error, field=field), status


def _index_page(editing: int | None = None, error: str | None = None, value: str = "", status: int = 200):
    found = saved_segments.listing()
    return render_template("segments/index.html", segments=found, summaries=_summaries(found), editing=editing,
                           error=error, value=value), status


def _row(segment: Segment, editing: bool = False, error: str | None = None, value: str = "", status: int = 200):
    """Return the segment's row to htmx, or the whole page with that row in the same state."""
    if not partials.wanted():
        return _index_page(segment.id if editing else None, error, value, status)
    return render_template("segments/_row.html", segment=segment, summaries=_summaries([segment]),
                           editing=segment.id if editing else None, error=error, value=value), status


@bp.get("/")
def index():
    """List the saved segments; each count loads on its own."""
    return _index_page()


@bp.get("/new")
def new():
    """Show the form that saves the customers list's current filters as a segment."""
    return _new_page(customer_list.Filters.from_args(request.args))


@bp.post("/")
def create():
    """Save the posted filters of the customers list under a name."""
    filters = customer_list.Filters.from_args(request.form)
    name = request.form.get("name", "")
    try:
        segment = saved_segments.create(name, filters, current_user)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        if not partials.wanted():
            return _new_page(filters, name, error.message, error.field, 422)
        return render_template("segments/_save_form.html", filters=filters, value=name, error=error.message,
                               field=error.field, open=True), 422
    if partials.wanted():
        return render_template("segments/_save_form.html", filters=filters, value="", saved=segment)
    flash(_("Segment “%(name)s” saved.", name=segment.name), "success")
    return redirect(url_for("segments.index"))


@bp.get("/<int:segment_id>")
def row(segment_id: int):
    """Return a segment's row (what Cancel returns to)."""
    segment = _segment_or_404(segment_id)
    if not partials.wanted():
        return redirect(url_for("segments.index"))
    return _row(segment)


@bp.get("/<int:segment_id>/edit")
def edit(segment_id: int):
    """Open a segment's name for renaming in place."""
    segment = _changeable_or_403(segment_id)
    return _row(segment, editing=True, value=segment.name)


@bp.post("/<int:segment_id>")
def rename(segment_id: int):
    """Rename a segment; a refused name comes back on the field."""
    segment = _changeable_or_403(segment_id)
    name = request.form.get("name", "")
    try:
        saved_segments.rename(segment, name, current_user)
        db.session.commit()
    except FieldError as error:
        db.session.rollback()
        return _row(_segment_or_404(segment_id), editing=True, error=error.message, value=name, status=422)
    return _row(segment)


@bp.post("/<int:segment_id>/delete")
def delete(segment_id: int):
    """Delete a saved segment; its customers are untouched."""
    segment = _changeable_or_403(segment_id)
    name = segment.name
    saved_segments.delete(segment, current_user)
    db.session.commit()
    if partials.wanted():
        return ""  # the row swaps itself out
    flash(_("Segment “%(name)s” deleted.", name=name), "info")
    return redirect(url_for("segments.index"))


def summary(filters: customer_list.Filters, stages: dict[int, str], team: dict[int, str]) -> list[str]:
    """Describe a filter of the customers list in words, one item per condition."""
    def span(low, high, both, low_only, high_only, show=str):
        if low is not None and high is not None:
            return [both % {"a": show(low), "b": show(high)}]
        if low is not None:
            return [low_only % {"a": show(low)}]
        if high is not None:
            return [high_only % {"a": show(high)}]
        return []

    def money(major):
        return _money(customer_list.minor_units(major))

    items = []
    if filters.q:
        items.append(_("Search: %(q)s", q=filters.q))
    if filters.status:
        items.append(_("Status: %(s)s", s=STATUS_LABELS[filters.status]))
    if filters.stage is not None:
        items.append(_("Stage: %(s)s", s=stages.get(filters.stage, "?")))
    if filters.manager:
        manager = _("Unassigned") if filters.manager == "none" else team.get(int(filters.manager), "?")
        items.append(_("Manager: %(m)s", m=manager))
    if filters.city:
        items.append(_("City: %(c)s", c=filters.city))
    if filters.tag:
        items.append(_("Tag: %(t)s", t=filters.tag))
    items += span(filters.last_from, filters.last_to, _("Last order %(a)s – %(b)s"), _("Last order from %(a)s"),
                  _("Last order up to %(a)s"), format_date)
    items += span(filters.first_from, filters.first_to, _("First order %(a)s – %(b)s"), _("First order from %(a)s"),
                  _("First order up to %(a)s"), format_date)
    items += span(filters.bought_from, filters.bought_to, _("Bought between %(a)s and %(b)s"),
                  _("Bought on or after %(a)s"), _("Bought on or before %(a)s"), format_date)
    if filters.rfm is not None:
        items.append(_("RFM cell %(cell)s", cell=cell_label(filters.rfm)))
    if filters.rfm_group:
        items.append(_("RFM group: %(g)s", g=settings.load().group_name(filters.rfm_group)))
    if filters.behaviour:
        items.append(_("Class: %(c)s", c=BEHAVIOUR_LABELS[filters.behaviour]))
    if filters.gender:
        items.append(_("Gender: %(g)s", g=GENDER_LABELS[filters.gender]))
    items += span(filters.age_from, filters.age_to, _("Age %(a)s–%(b)s"), _("Age %(a)s or more"),
                  _("Age up to %(a)s"))
    items += span(filters.spend_from, filters.spend_to, _("Spent %(a)s – %(b)s"), _("Spent %(a)s or more"),
                  _("Spent up to %(a)s"), money)
    items += span(filters.orders_from, filters.orders_to, _("%(a)s–%(b)s orders"), _("%(a)s or more orders"),
                  _("Up to %(a)s orders"))
    if filters.product:
        items.append(_("Among their top %(n)d products: %(p)s", n=FAVOURITES, p=filters.product))
    if filters.category:
        items.append(_("Among their top %(n)d categories: %(c)s", n=FAVOURITES, c=filters.category))
    return items


# --- the RFM grid and the behaviour classes -------------------------------------------------------

def _last_rebuild() -> tuple[datetime | None, dict]:
    """Return when the last rebuild finished (None before the first) and what it recorded."""
    recorded = segments.last_rebuild()
    finished_at = recorded.get("finished_at")
    if isinstance(finished_at, str):
        try:
            finished_at = datetime.fromisoformat(finished_at)
        except ValueError:
            finished_at = None
    return (finished_at if isinstance(finished_at, datetime) else None), recorded


def _score_hints(bounds: dict) -> dict[str, dict[int, str]]:
    """Say what each score means under the last rebuild's cut points (nothing before the first)."""
    try:
        r3, r2, f2, f3, m2, m3 = (int(bounds[k]) for k in ("r3_days", "r2_days", "f2", "f3", "m2", "m3"))
    except (KeyError, TypeError, ValueError):
        return {"r": {}, "f": {}, "m": {}}
    return {
        "r": {3: ngettext("within %(num)d day", "within %(num)d days", r3),
              2: ngettext("within %(num)d day", "within %(num)d days", r2),
              1: ngettext("over %(num)d day ago", "over %(num)d days ago", r2)},
        "f": {3: ngettext("%(num)d order or more", "%(num)d orders or more", f3),
              2: ngettext("%(a)d–%(num)d order", "%(a)d–%(num)d orders", f3 - 1, a=f2) if f3 - 1 > f2
              else ngettext("%(num)d order", "%(num)d orders", f2),
              1: ngettext("under %(num)d order", "under %(num)d orders", f2)},
        "m": {3: _("%(a)s or more", a=_money(m3)), 2: _("%(a)s – %(b)s", a=_money(m2), b=_money(m3)),
              1: _("under %(a)s", a=_money(m2))},
    }


@bp.get("/rfm")
def rfm_grid():
    """Show the 27 RFM cells with their customers and revenue as of the last rebuild, and the groups."""
    return render_template("segments/rfm.html", **grid_context())


def grid_context() -> dict:
    """What the RFM grid partial (segments/_rfm_grids.html) draws; the dashboard shows it too."""
    finished_at, recorded = _last_rebuild()
    found = {c.rfm: c for c in db.session.scalars(select(RfmCell))} if finished_at else {}
    busiest = max((c.customers for c in found.values()), default=0)

    def cell_view(cell: int) -> dict:
        row = found.get(cell)
        count, revenue = (row.customers, row.revenue) if row else (0, 0)
        # Shade 0 is an empty cell; 1-5 are fifths of the busiest one.
        shade = -(-SHADES * count // busiest) if count else 0
        return {"cell": cell, "label": cell_label(cell), "count": count, "revenue": revenue,
                "revenue_short": formatting.short_money(revenue), "shade": shade, "group": rfm.group_of(cell)}

    cells = {cell: cell_view(cell) for cell in rfm.CELLS}
    names = settings.load()
    groups = [{"key": key, "name": names.group_name(key), "description": rfm.DESCRIPTIONS[key],
               "count": sum(cells[c]["count"] for c in rfm.cells_of(key)),
               "revenue": sum(cells[c]["revenue"] for c in rfm.cells_of(key))} for key in rfm.GROUPS]
    group_names = {g["key"]: g["name"] for g in groups}
    return {"finished_at": finished_at, "cells": cells, "groups": groups, "group_names": group_names,
            "hints": _score_hints(recorded.get("bounds") or {}), "scores": rfm.SCORES,
            "total": sum(c["count"] for c in cells.values())}


@bp.get("/classes")
def classes():
    """Show the behaviour classes, each explained, with a live count and a link to its customers."""
    finished_at, _recorded = _last_rebuild()
    return render_template("segments/classes.html", finished_at=finished_at, labels=BEHAVIOUR_LABELS,
                           explanations=BEHAVIOUR_EXPLANATIONS)
