"""Ranges and UTC days: which days a figure covers.

Days are UTC days: an entry belongs to the UTC date of its ``created_at``.
Ranges: "today" = since 00:00 UTC today; "7d" / "30d" = the last 7 / 30 UTC
days including today; "all" = everything. "Now" is the app's clock
(`app.clock.now`, through `rollups.today`) so tests can move it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from app.dashboard import rollups
from app.dashboard.sources import SOURCES
from app.errors import InvalidValue

RANGES = ("today", "7d", "30d", "all")
MAX_DAYS = 366  # the longest day-by-day series shown ("all" shows the most recent days)
MAX_MONTHS = 60  # the longest month-by-month series shown ("all" on a creator's chart: the last five years)
EPOCH = date(1970, 1, 1)


def parse_range(value, default: str = "30d") -> str:
    """The range named by `value` (a query-string value); None or "" → `default`.

    Raises `InvalidValue` (code "invalid_range", field "range") for anything
    else, including non-strings and overlong values."""
    if value is None or value == "":
        return default
    if isinstance(value, str) and value in RANGES:
        return value
    raise InvalidValue("Choose a range: today, 7d, 30d or all.", "invalid_range", field="range")


@dataclass
class DayTotals:
    day: date
    tips: int = 0
    tickets: int = 0
    calls: int = 0

    @property
    def total(self) -> int:
        return self.tips + self.tickets + self.calls


def today() -> date:
    return rollups.today()


def start_day(range_: str) -> date:
    """First UTC day of the range (the epoch for "all")."""
    range_ = parse_range(range_)
    today_ = today()
    return {"today": today_, "7d": today_ - timedelta(days=6), "30d": today_ - timedelta(days=29),
            "all": EPOCH}[range_]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def month_start(day: date) -> date:
    """The first day of `day`'s calendar month."""
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    """The first day of the month `n` months after `month`'s (n may be negative)."""
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def months(start: date | None, by_month: dict[date, tuple[int, ...]]) -> list[DayTotals]:
    """One DayTotals per calendar month (UTC) from `start`'s month to this one, oldest
    first, `day` being the month's first day; `by_month` gives a month's sums per
    source (SOURCES order, keyed by its first day), months it lacks are zero.
    [] for no start."""
    if start is None:
        return []
    out, month, last, zero = [], month_start(start), month_start(today()), (0,) * len(SOURCES)
    while month <= last:
        out.append(DayTotals(month, *by_month.get(month, zero)))
        month = add_months(month, 1)
    return out


def days(start: date | None, by_day: dict[date, tuple[int, ...]]) -> list[DayTotals]:
    """One DayTotals per day from `start` to today, oldest first; `by_day` gives a
    day's sums per source (SOURCES order), days it lacks are zero. [] for no start."""
    if start is None:
        return []
    out, day, today_, zero = [], start, today(), (0,) * len(SOURCES)
    while day <= today_:
        out.append(DayTotals(day, *by_day.get(day, zero)))
        day += timedelta(days=1)
    return out
