"""What the dashboard pages show, shaped for the templates: range labels and
the geometry of the per-day bar chart.

Nothing here queries or computes money: every figure comes from
`app.dashboard.service`; this module only turns per-day totals into SVG
coordinates (pure functions of their input, so the chart is server-rendered,
readable without JavaScript, and tested without a browser). Numbers are
written by the templates with the `|tokens` filter, never formatted here,
except the y axis's, which `axis_label` shortens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

RANGE_LABELS = {"today": "Today", "7d": "7 days", "30d": "30 days", "all": "All time"}
# How a range reads inside a sentence ("No earnings in the last 7 days").
RANGE_PHRASES = {"today": "today", "7d": "in the last 7 days", "30d": "in the last 30 days", "all": "so far"}
SOURCE_LABELS = {"tips": "Tips", "tickets": "Tickets", "calls": "Calls"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # whatever the locale
SPENDING_TYPE_LABELS = {"tips": "Tip", "tickets": "Ticket", "calls": "Call", "refund": "Refund"}

# Coordinates are percentages of the SVG's box, which CSS sizes (the full width of its card,
# a fixed height): bars stretch to any width while text keeps its size, so a phone gets a
# chart as tall and legible as a desktop's instead of a scaled-down one.
WIDTH, HEIGHT = 100, 100
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 12, 1, 6, 12
MAX_X_LABELS = 8
MIN_BAR, MAX_BAR = 0.15, 9.0  # % of the width: a year of days stays visible, one day is not a wall
Y_TICKS = 4


@dataclass(frozen=True)
class Segment:
    """One source's part of a day's bar."""
    source: str
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    day: date
    total: int
    tips: int
    tickets: int
    calls: int
    x: float
    width: float
    segments: tuple[Segment, ...]  # bottom to top, zero-height parts left out


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class XLabel:
    text: str
    x: float
    anchor: str = "middle"  # SVG text-anchor: the newest day's label ends at the plot's edge, never past it
    minor: bool = False  # every other label counting back from the newest: left out on narrow screens


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float  # y of the baseline
    bars: tuple[Bar, ...]
    y_ticks: tuple[Tick, ...]
    x_labels: tuple[XLabel, ...]
    total: int
    peak: Bar | None  # the day (or month) with the most, None when every one is zero
    unit: str = "day"  # what a bar is: a UTC "day" or a calendar "month" (its `day` is the month's first)

    @property
    def empty(self) -> bool:
        return self.peak is None

    @property
    def first_day(self) -> date | None:
        return self.bars[0].day if self.bars else None

    @property
    def last_day(self) -> date | None:
        return self.bars[-1].day if self.bars else None


def nice_ceiling(value: int, ticks: int = Y_TICKS) -> int:
    """The smallest "round" axis maximum ≥ `value` that splits into `ticks`
    whole steps of 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k tokens (at least 1 per step)."""
    if value <= 0:
        return ticks
    raw = value / ticks
    magnitude = 10 ** max(0, math.floor(math.log10(raw))) if raw >= 1 else 1
    for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        step = factor * magnitude
        if step != int(step):
            continue  # 1.5 or 2.5 tokens is not a whole step
        if step * ticks >= value:
            return int(step * ticks)
    return int(10 * magnitude * ticks)  # unreachable: 10 × magnitude always covers raw


def day_label(day: date, with_weekday: bool = False) -> str:
    """"3 Jun" (or "Mon 3 Jun"): English month names whatever the server's locale."""
    text = f"{day.day} {MONTHS[day.month - 1]}"
    if with_weekday:
        text = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[day.weekday()] + " " + text
    return text


def axis_label(value: int) -> str:
    """A y-axis tick: 7,500 as is, from 10,000 on 15k, 250k, 1.5M, 2B. Exact for every tick
    `nice_ceiling` makes (two significant digits at most); the exact figures are also in each
    bar's label and the table below the chart. The axis has a fixed share of the chart's width:
    on a phone, "45,000" did not fit it."""
    if value < 10_000:
        return f"{value:,}"
    size, suffix = next((s, x) for s, x in ((10 ** 9, "B"), (10 ** 6, "M"), (10 ** 3, "k")) if value >= s)
    return f"{value / size:.1f}".removesuffix(".0") + suffix


def month_label(day: date) -> str:
    """"Jun 2026": the month of `day`."""
    return f"{MONTHS[day.month - 1]} {day.year}"


def point_label(day: date, unit: str) -> str:
    """A bar's full name in a sentence or a tooltip: "Mon 3 Jun 2026", or "Jun 2026"
    for a month."""
    if unit == "month":
        return month_label(day)
    return f"{day_label(day, with_weekday=True)} {day.year}"


def bar_chart(days, unit: str = "day") -> Chart:
    """Stacked bars (tips, tickets, calls from the bottom) for `days`, a list of
    objects with `day`, `tips`, `tickets`, `calls` and `total`, oldest first
    (the service's `DayTotals`); `unit` "month" when each is a calendar month
    (labelled "Jun 2026"). Any length, including none. A source below zero
    on a day (refunds of blocks earned on an earlier day) draws nothing: the bar
    stacks the day's positive parts, which the axis always covers."""
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    plot_w, plot_h = right - left, bottom - top
    peak_value = max((sum(max(0, getattr(d, source)) for source in SOURCE_LABELS) for d in days), default=0)
    y_max = nice_ceiling(peak_value)
    step = y_max // Y_TICKS
    y_ticks = tuple(Tick(v, _r(bottom - v / y_max * plot_h)) for v in range(0, y_max + 1, step))

    n = len(days)
    slot = plot_w / n if n else plot_w
    # Thin bars for a year of days, capped so one day ("today") is not a wall.
    width = min(max(slot * 0.72, MIN_BAR), MAX_BAR)
    bars, peak = [], None
    for i, d in enumerate(days):
        x = left + i * slot + (slot - width) / 2
        segments, base = [], bottom
        for source in SOURCE_LABELS:
            value = getattr(d, source)
            if value <= 0:
                continue
            height = value / y_max * plot_h
            base -= height
            segments.append(Segment(source, value, _r(base), _r(height)))
        bar = Bar(d.day, d.total, d.tips, d.tickets, d.calls, _r(x), _r(width), tuple(segments))
        bars.append(bar)
        if d.total > 0 and (peak is None or d.total > peak.total):
            peak = bar

    every = max(1, math.ceil(n / MAX_X_LABELS))
    labelled = [i for i in range(n) if (n - 1 - i) % every == 0]  # always label the newest day
    x_labels = tuple(_x_label(days[i].day, i, n, slot, left, right, minor=(n - 1 - i) // every % 2 == 1, unit=unit)
                     for i in labelled)
    return Chart(WIDTH, HEIGHT, left, right, top, bottom, tuple(bars), y_ticks, x_labels,
                 sum(d.total for d in days), peak, unit)


def _x_label(day: date, i: int, n: int, slot: float, left: float, right: float, minor: bool,
             unit: str = "day") -> XLabel:
    text = month_label(day) if unit == "month" else day_label(day, with_weekday=n == 1)
    if n > 1 and i == n - 1:
        return XLabel(text, _r(right), "end", minor)  # centred under the last bar, half of it would be cut off
    return XLabel(text, _r(left + i * slot + slot / 2), "middle", minor)


def _r(v: float) -> float:
    return round(v, 2)
