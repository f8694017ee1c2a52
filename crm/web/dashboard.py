"""The dashboard: the health of the base for a period against the one before, in panels.

The page holds the period form and one placeholder per panel; each panel loads as its own htmx
request (`/dashboard/panels/<name>`), so a slow one never holds up the others. Without script a
placeholder is a link, and the panel's URL renders it inside the whole page.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm import callbacks, campaigns, charts, clock, figures, metrics, periods, rfm, settings, summaries
from crm.web import partials
from crm.web.customer_forms import OUTCOME_LABELS
from crm.web.formatting import percent, short_money
from crm.web.segments import BEHAVIOUR_LABELS, grid_context

bp = Blueprint("dashboard", __name__)

PANELS = ("base", "sales", "reactivation", "rfm", "cohorts", "trends")
PANEL_TITLES = {"base": _l("The base"), "sales": _l("Sales"), "reactivation": _l("Reactivation"),
                "rfm": _l("RFM grid"), "cohorts": _l("Cohort retention"), "trends": _l("Trends")}
TREND_MONTHS = 12


@bp.get("/")
def start():
    """Open the dashboard, the overview every user starts from."""
    return redirect(url_for("dashboard.index"))


@bp.get("/dashboard")
def index():
    """The period form and the panels, each loading on its own."""
    period, errors = periods.parse(request.args, clock.team_today())
    return render_template("dashboard/index.html", period=period, errors=errors, panels=PANELS,
                           presets=periods.PRESETS, built=summaries.state().get("built_at"), only=None)


@bp.context_processor
def _labels() -> dict:
    names = settings.load()
    return {"panel_titles": PANEL_TITLES, "group_names": {key: names.group_name(key) for key in rfm.GROUPS},
            "class_names": BEHAVIOUR_LABELS, "outcome_labels": OUTCOME_LABELS, "outcome_keys": callbacks.OUTCOMES,
            "compare": metrics.Compare}


@bp.app_template_filter()
def month_end(first: date) -> date:
    return periods.month_end(first)


@bp.app_template_filter()
def add_months(first: date, months: int) -> date:
    """The first day of the month `months` after the month of `first`."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@bp.get("/dashboard/panels/<name>")
def panel(name: str):
    """One panel: a fragment for htmx, or the dashboard page with just this panel without script."""
    if name not in PANELS:
        abort(404)
    today = clock.team_today()
    period, errors = periods.parse(request.args, today)
    context = {"period": period, "name": name, **_PANEL_DATA[name](period, today)}
    if partials.wanted():
        return render_template(f"dashboard/_{name}.html", **context)
    return render_template("dashboard/index.html", errors=errors, panels=PANELS, presets=periods.PRESETS,
                           built=summaries.state().get("built_at"), only=name, **context)


def _base(period, today) -> dict:
    return {"base": metrics.base(period)}


def _sales(period, today) -> dict:
    sales = metrics.sales(period)
    width = sales.ltv_width
    categories = [f"{money(width * n)}–{money(width * (n + 1))}" for n in range(len(sales.ltv) - 1)]
    if sales.ltv:
        categories.append(_("%(amount)s and more", amount=money(width * (len(sales.ltv) - 1))))
    # A bucket is [n·width, (n+1)·width); the list's spend filter includes both ends, so it stops a
    # minor unit short of the next bucket.
    currency = current_app.config["TEAM_CURRENCY"]
    hrefs = [_customers(orders_from=1, spend_from=figures.major_units(width * n, currency),
                        spend_to=figures.major_units(width * (n + 1) - 1, currency) if n < len(sales.ltv) - 1 else None)
             for n in range(len(sales.ltv))]
    edges = [short_money(width * n) for n in range(len(sales.ltv))]
    axis = [f"{edges[n]}–{edges[n + 1]}" for n in range(len(sales.ltv) - 1)] + [f"{edges[-1]}+"] if sales.ltv else []
    ltv = charts.columns(_("Customers by lifetime value"), categories, [_("Customers")], [sales.ltv],
                         _count, hrefs, axis_labels=axis)
    return {"sales": sales, "ltv": ltv}


def _reactivation(period, today) -> dict:
    start, end = period.bounds()
    before = period.previous()
    before_start, before_end = before.bounds()
    return {"totals": campaigns.summarised_totals(period.start, period.end),
            "totals_before": campaigns.summarised_totals(before.start, before.end),
            "outcomes": callbacks.callback_outcomes(start, end),
            "outcomes_before": callbacks.callback_outcomes(before_start, before_end)}


def _rfm(period, today) -> dict:
    return grid_context()


def _cohorts(period, today) -> dict:
    cohorts = metrics.cohorts(today)
    # Shaded against the best cell of the table: retention shares are small, and a scale up to 100 %
    # would leave every cell pale.
    best = max((cell[1] for row in cohorts for cell in row.retained if cell), default=0) or 1
    return {"cohorts": cohorts, "months": range(1, summaries.COHORT_MONTHS + 1),
            "shade": lambda share: charts.heat(share / best)}


def _trends(period, today) -> dict:
    months = metrics.trends(today, TREND_MONTHS)
    names = [format_date(m.month, "LLL yyyy") for m in months]
    bought = [_customers(bought_from=m.month.isoformat(), bought_to=periods.month_end(m.month).isoformat())
              for m in months]
    return {
        "months": months,
        "revenue": charts.columns(_("Revenue by month"), names, [_("Revenue")], [[m.revenue for m in months]],
                                  money, bought, short=short_money),
        "orders": charts.columns(_("Orders by month"), names, [_("Orders")], [[m.orders for m in months]],
                                 _count, bought),
        "buyers": charts.columns(_("New and returning customers by month"), names,
                                 [_("New customers"), _("Returning customers")],
                                 [[m.new for m in months], [m.returning for m in months]], _count, bought),
        "lapsed": charts.lines(_("Lapsed share by month"), names, [_("Lapsed share")],
                               [[m.lapsed_share for m in months]], percent),
        "estimated": any(m.estimated for m in months),
    }


_PANEL_DATA = {"base": _base, "sales": _sales, "reactivation": _reactivation, "rfm": _rfm, "cohorts": _cohorts,
               "trends": _trends}


def money(minor: int) -> str:
    return current_app.jinja_env.filters["money"](minor)


def _count(value: float) -> str:
    return format_decimal(value, "#,##0.#")


def _customers(**args) -> str:
    return url_for("customers.index", **{key: value for key, value in args.items() if value is not None})
