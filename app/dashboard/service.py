"""The dashboards' figures: one function per view, every figure exact against
the ledger entries. Routes, the JSON API and tests call these.

Where each part lives:

* `creator.py`  a creator's earnings (totals, per day, top fans, per show and call)
* `fan.py`      a user's own spending (totals, per month, line by line)
* `platform.py` the operators' view (fees, token supply, escrow, last books check)
* `export.py`   the CSV exports of earnings and spending
* `queries.py`  every SQL statement, and how figures read rollups + the newest entries
* `ranges.py`   ranges ("today", "7d", "30d", "all") and UTC days
* `sources.py`  which transfer kinds make tips, tickets and calls (and which are neither)
* `facts.py`    each entry's counterparty and stream / call, as every figure reads them
* `rollups.py`  the daily rollups the worker keeps (see its design note)
"""
from __future__ import annotations

from app.dashboard.creator import (call_revenue, creator_earnings, earnings_by_day, earnings_by_month, earnings_series,
                                   keep_current, stream_revenue, top_fans)
from app.dashboard.export import export_earnings_csv, export_spending_csv
from app.dashboard.fan import fan_spending, spending_by_month, spending_lines
from app.dashboard.platform import platform_overview
from app.dashboard.ranges import RANGES, parse_range
from app.dashboard.sources import SOURCES

__all__ = ["RANGES", "SOURCES", "call_revenue", "creator_earnings", "earnings_by_day", "earnings_by_month",
           "earnings_series", "export_earnings_csv", "export_spending_csv", "fan_spending", "keep_current",
           "parse_range", "platform_overview", "spending_by_month", "spending_lines", "stream_revenue", "top_fans"]
