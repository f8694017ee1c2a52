"""The funnel board (columns of customer cards, moved by drag and drop or the card's menu) and the
owner's page to rename, reorder, add and remove its stages."""

from __future__ import annotations

from typing import NamedTuple

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from crm import accounts, clock, stages
from crm.errors import FieldError
from crm.extensions import db
from crm.figures import days_since
from crm.models import Customer, Stage
from crm.web import formatting, partials
from crm.web.access import owner_only
from crm.web.customer_forms import stage_name

bp = Blueprint("funnel", __name__)


@bp.context_processor
def _helpers() -> dict:
    return {"stage_name": stage_name, "count_cap": stages.COUNT_CAP}


class CardView(NamedTuple):
    """A card as the template shows it: ready-made strings (a tuple, so Jinja reads its fields at once)."""

    id: int
    name: str
    pinned: bool
    url: str
    ltv: str
    since: str
    menu_label: str


def _card_views(cards: list[stages.Card]) -> list[CardView]:
    """Turn cards into ready-made strings: a board shows hundreds, so each translation is looked up
    once and Babel's money formatting is cached (see crm.web.formatting), not redone per card."""
    locale, currency, today = str(get_locale()), current_app.config["TEAM_CURRENCY"], clock.team_today()
    days_ago, no_orders, menu_label = _("%(n)d days ago"), _("no orders"), _("Stage of %(name)s")
    views = []
    for card in cards:
        days = days_since(card.last_order_at, today)
        views.append(CardView(card.id, card.name, card.pinned, url_for("customers.card", customer_id=card.id),
                              formatting.money(card.total_spent, currency, locale),
                              no_orders if days is None else days_ago % {"n": days},
                              menu_label % {"name": card.name}))
    return views


def _card_labels(board: list[Stage]) -> dict:
    """What every card repeats (its words, the stages of its menu, its forms' URLs), made once per page."""
    return {"ltv": _("LTV"), "stage": _("Stage"), "move_to": _("Move to"), "pinned": _("Pinned"),
            "pinned_hint": _("Placed by a person: the nightly rebuild leaves it on this stage."),
            "unpin": _("Unpin"), "unpin_hint": _("Let the nightly rebuild move this card again"),
            "move_url": url_for("funnel.move"), "unpin_url": url_for("funnel.unpin"),
            "stages": [(stage.id, stage_name(stage)) for stage in board]}



def _row_or_404(model, ident: int | None):
    # Ids past 64 bits come from typed URLs, not from pages: the database driver would refuse them.
    return (db.session.get(model, ident) if ident and 0 < ident < 2**63 else None) or abort(404)


def _stage_or_404(stage_id: int | None) -> Stage:
    return _row_or_404(Stage, stage_id)


def _customer_or_404(customer_id: int | None) -> Customer:
    return _row_or_404(Customer, customer_id)


def _whose(values) -> tuple[str, str]:
    """Read the board's manager filter: ("", everyone), ("mine", ...), ("none", unassigned) or a user id.

    Return it as shown in the URL and as the customers list filters by it.
    """
    raw = (values.get("manager") or "").strip()
    if raw == "mine":
        return raw, str(current_user.id)
    if raw == "none" or (raw.isdigit() and len(raw) < 19):
        return raw, raw
    return "", ""


def _board_context(whose: str, manager: str) -> dict:
    board = stages.ordered()
    totals = stages.board_totals([stage.id for stage in board], manager)
    by_manager = stages.reads_by_manager(manager)
    columns = []
    for stage in board:
        page = stages.column(stage.id, manager=manager, by_manager=by_manager)
        columns.append((stage, totals[stage.id], _card_views(page.cards), page.next_cursor))
    return {
        "columns": columns,
        "whose": whose,
        "team": accounts.active_team(),
        "labels": _card_labels(board),
    }


@bp.get("/funnel")
def board():
    """Show the funnel stages as columns of cards; htmx gets the columns alone (filter changes)."""
    context = _board_context(*_whose(request.args))
    if partials.wanted():
        return render_template("funnel/_board.html", **context)
    return render_template("funnel/board.html", **context)


@bp.get("/funnel/stages/<int:stage_id>/cards")
def more_cards(stage_id: int):
    """Return the next page of a column's cards, after the cursor `after`."""
    stage = _stage_or_404(stage_id)
    whose, manager = _whose(request.args)
    if not partials.wanted():
        return redirect(url_for("funnel.board", manager=whose or None))
    page = stages.column(stage.id, request.args.get("after"), manager)
    return render_template("funnel/_cards.html", stage=stage, cards=_card_views(page.cards),
                           next_cursor=page.next_cursor, whose=whose, labels=_card_labels(stages.ordered()))


def _moved_response(customer: Customer, changed_stage_ids: list[int], placed: bool):
    """Answer a change to a card: the card, and the headers of the columns whose totals changed."""
    whose, manager = _whose(request.values)
    if not partials.wanted():
        return redirect(url_for("funnel.board", manager=whose or None))
    board = stages.ordered()
    totals = stages.board_totals(changed_stage_ids, manager)
    heads = [(stage, totals[stage.id]) for stage in board if stage.id in totals]
    stage = next((s for s in board if s.id == customer.stage_id), None)
    return render_template("funnel/_moved.html", card=_card_views(stages.cards([customer.id]))[0], stage=stage,
                           heads=heads, placed=placed, whose=whose, labels=_card_labels(board))


# The customer is named in the form, not the URL: the board renders hundreds of these forms and
# their action is then one URL for all.
@bp.post("/funnel/move")
def move():
    """Put a customer's card on another stage, pinned there, with the move on the timeline.

    `placed=1` says the card already stands in its new column (dropped there); otherwise the
    answer takes it out of the old column and puts it at the top of the new one.
    """
    customer = _customer_or_404(request.form.get("customer_id", type=int))
    stage = _stage_or_404(request.form.get("stage_id", type=int))
    before = customer.stage_id
    stages.move_customer(customer, stage.id, current_user)
    db.session.commit()
    stages.forget_totals(before, stage.id)
    return _moved_response(customer, [s for s in (before, stage.id) if s], placed=request.form.get("placed") == "1")


@bp.post("/funnel/unpin")
def unpin():
    """Let the nightly rebuild move the customer's card again."""
    customer = _customer_or_404(request.form.get("customer_id", type=int))
    stages.unpin(customer)
    db.session.commit()
    return _moved_response(customer, [], placed=True)


# --- the owner's page of stages ------------------------------------------------------------------

def _stages_page(errors: dict | None = None, status: int = 200, values: dict | None = None):
    board = stages.ordered()
    return render_template("funnel/stages.html", stages=board,
                           counts={stage.id: stages.count(stage.id) for stage in board},
                           errors=errors or {}, values=values or {}), status


def _refused(stage_id: int | None, error: FieldError):
    db.session.rollback()
    key = f"{stage_id or 'new'}-{error.field}"
    return _stages_page({key: error.message}, 422, {key: request.form.get(error.field, "")})


@bp.get("/settings/stages")
@owner_only
def stage_list():
    """List the stages with forms to rename, reorder, add and remove them (owners only)."""
    return _stages_page()


@bp.post("/settings/stages")
@owner_only
def create_stage():
    """Add a stage at the end of the board."""
    try:
        stages.create_stage(request.form.get("name", ""))
    except FieldError as error:
        return _refused(None, error)
    db.session.commit()
    return redirect(url_for("funnel.stage_list"), 303)


@bp.post("/settings/stages/<int:stage_id>/name")
@owner_only
def rename_stage(stage_id: int):
    """Rename a stage."""
    stage = _stage_or_404(stage_id)
    name = request.form.get("name", "")
    # The form shows a default stage's name in the owner's language; sending it back unchanged
    # must not store the translation as the name everyone sees.
    if " ".join(name.split()) != stage_name(stage):
        try:
            stages.rename_stage(stage, name)
        except FieldError as error:
            return _refused(stage.id, error)
        db.session.commit()
    return redirect(url_for("funnel.stage_list"), 303)


@bp.post("/settings/stages/<int:stage_id>/position")
@owner_only
def reorder_stage(stage_id: int):
    """Move a stage one column left (`direction=up`) or right (`down`)."""
    stage = _stage_or_404(stage_id)
    step = {"up": -1, "down": 1}.get(request.form.get("direction", ""))
    if step is None:
        abort(400)
    board = stages.ordered()
    stages.reorder_stage(stage, board.index(stage) + step)
    db.session.commit()
    return redirect(url_for("funnel.stage_list"), 303)


@bp.post("/settings/stages/<int:stage_id>/delete")
@owner_only
def delete_stage(stage_id: int):
    """Remove a stage, moving its customers to the stage the owner chose."""
    stage = _stage_or_404(stage_id)
    try:
        stages.delete_stage(stage, request.form.get("move_to", type=int), current_user)
    except FieldError as error:
        return _refused(stage.id, error)
    db.session.commit()
    stages.forget_totals(*(s.id for s in stages.ordered()))
    return redirect(url_for("funnel.stage_list"), 303)
