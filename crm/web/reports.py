"""Reports: the campaign report (every sequence with its steps: sent, delivered, clicked, answered,
came back, revenue, moved to inactive, the lift over the holdout and the cost), and its CSV (owners)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, stream_with_context
from flask_babel import format_decimal

from crm import campaigns, channels, exports
from crm.web import formatting
from crm.web.access import owner_only

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _points(value: float | None) -> str | None:
    """Percentage points with their sign, as the sequence's own page shows them."""
    return format_decimal(value, format="+#,##0.0;-#,##0.0") if value is not None else None


@bp.get("/campaigns", endpoint="campaigns")
def campaign_report():
    """Show the campaign report: a table per sequence with its steps beneath."""
    report = campaigns.report()
    return render_template("reports/campaigns.html", report=report, points=_points, percent=formatting.percent,
                           channel_labels=channels.LABELS,
                           uncosted=", ".join(str(channels.LABELS[channel]) for channel in report.uncosted))


@bp.get("/campaigns.csv", endpoint="campaigns_csv")
@owner_only
def campaign_report_csv():
    """Download the campaign report as CSV: a row per sequence and per step (owners only)."""
    rows = campaigns.csv_rows(campaigns.report(), current_app.config["TEAM_CURRENCY"])
    return current_app.response_class(
        stream_with_context(exports.rows_csv(campaigns.CSV_COLUMNS, rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="campaigns.csv"', "Cache-Control": "no-store"},
    )
