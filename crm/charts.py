"""Chart geometry for server-rendered SVG: numbers in, rectangles, points and axis ticks out.

The templates (crm/templates/dashboard/_charts.html) draw them; nothing runs in the browser, so
charts work without script, print, and pass a strict CSP. Colours are CSS classes (series-0,
series-1, ...), never inline styles. Each chart also carries its rows for the table view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from crm.figures import nice_number

WIDTH, HEIGHT = 640, 220  # the viewBox; the SVG scales to its container
LEFT, BOTTOM, TOP, RIGHT = 60, 28, 10, 8  # room for the axis labels (short ones: "$1.2M")


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: int  # the colour class
    label: str  # what a screen reader and the tooltip say: "March 2026, new customers: 12"
    href: str | None = None


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass
class Chart:
    title: str
    series: list[str]  # legend names, in colour order
    categories: list[str]  # x-axis labels (short)
    rects: list[Rect] = field(default_factory=list)
    points: list[list[tuple[float, float]]] = field(default_factory=list)  # one polyline per series
    dots: list[Rect] = field(default_factory=list)  # markers of the line points (x, y, label)
    ticks: list[Tick] = field(default_factory=list)
    label_x: list[float] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # the table view: category, then a value per series
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM

    @property
    def polylines(self) -> list[str]:
        return [" ".join(f"{x:.1f},{y:.1f}" for x, y in line) for line in self.points]


def _scale(top_value: float, ticks: int = 4) -> tuple[float, list[float]]:
    """A rounded top of the axis and the tick values up to it (none for an all-zero chart)."""
    if top_value <= 0:
        return 0, []
    step = nice_number(top_value / ticks)
    count = math.ceil(top_value / step - 1e-9)
    return step * count, [step * n for n in range(count + 1)]


def columns(title: str, categories: list[str], series: list[str], values: list[list[float]],
            fmt, hrefs: list[str | None] | None = None, stacked: bool = True, short=None,
            axis_labels: list[str] | None = None) -> Chart:
    """Columns per category; with several series stacked (or side by side). `values[s][c]` is
    series s in category c; `fmt` turns a value into text (money, a count) for the labels and the
    table view, `short` (default `fmt`) for the axis; `axis_labels` shorter names for the x-axis."""
    chart = Chart(title, series, axis_labels or categories)
    short = short or fmt
    totals = [sum(values[s][c] for s in range(len(series))) if stacked else
              max(values[s][c] for s in range(len(series))) for c in range(len(categories))]
    top, tick_values = _scale(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(categories), 1)
    bar_w = slot * 0.7 / (1 if stacked else len(series))
    for c, category in enumerate(categories):
        base = HEIGHT - BOTTOM
        x0 = LEFT + slot * c + slot * 0.15
        chart.label_x.append(LEFT + slot * c + slot / 2)
        for s, name in enumerate(series):
            value = values[s][c]
            height = plot_h * value / top if top else 0
            x = x0 if stacked else x0 + bar_w * s
            y = base - height if stacked else HEIGHT - BOTTOM - height
            chart.rects.append(Rect(round(x, 1), round(y, 1), round(bar_w, 1), round(height, 1), s,
                                    f"{category}, {name}: {fmt(value)}", hrefs[c] if hrefs else None))
            if stacked:
                base -= height
        chart.rows.append([category, *(fmt(values[s][c]) for s in range(len(series)))])
    chart.ticks = [Tick(round(HEIGHT - BOTTOM - plot_h * v / top, 1), short(v)) for v in tick_values] if top else []
    return chart


def lines(title: str, categories: list[str], series: list[str], values: list[list[float | None]], fmt,
          top: float | None = None) -> Chart:
    """A line per series over the categories; None leaves a gap in the line (no data that month)."""
    chart = Chart(title, series, categories)
    known = [v for row in values for v in row if v is not None]
    top, tick_values = _scale(top if top is not None else max(known, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(categories), 1)
    chart.label_x = [LEFT + slot * c + slot / 2 for c in range(len(categories))]
    for s, name in enumerate(series):
        line = []
        for c, value in enumerate(values[s]):
            if value is None:
                continue
            x, y = chart.label_x[c], HEIGHT - BOTTOM - (plot_h * value / top if top else 0)
            line.append((x, y))
            chart.dots.append(Rect(round(x, 1), round(y, 1), 0, 0, s, f"{categories[c]}, {name}: {fmt(value)}"))
        chart.points.append(line)
    chart.rows = [[category, *("—" if values[s][c] is None else fmt(values[s][c]) for s in range(len(series)))]
                  for c, category in enumerate(categories)]
    chart.ticks = [Tick(round(HEIGHT - BOTTOM - plot_h * v / top, 1), fmt(v)) for v in tick_values] if top else []
    return chart


def heat(share: float, shades: int = 5) -> int:
    """The shade class (0 empty, 1..shades) of a share between 0 and 1."""
    return 0 if share <= 0 else min(shades, -(-int(share * 1000 * shades) // 1000))
