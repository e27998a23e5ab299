"""A creator's earnings: totals by source, day by day, top fans, and revenue per
show and per call. Every function raises Forbidden ("not_a_creator") for
non-creators and InvalidValue for a bad range."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.auth.service import require_creator
from app.dashboard import queries, rollups, sources
from app.dashboard.ranges import DayTotals, days, months, parse_range, start_day
from app.dashboard.sources import EARNING_KINDS

NOT_A_CREATOR = "Only creators have earnings."


@dataclass
class Earnings:
    range: str
    total: int
    by_source: dict[str, int]   # keys exactly "tips", "tickets", "calls"
    pending_escrow: int         # gross ticket tokens held for the creator's unsettled shows

    def to_dict(self) -> dict:
        return {"range": self.range, "total": self.total, "bySource": dict(self.by_source),
                "pendingEscrow": self.pending_escrow}


@dataclass
class FanTotal:
    user_id: int
    display_name: str
    total: int


@dataclass
class StreamRevenue:
    stream_id: int
    title: str
    status: str
    tickets: int
    tips: int

    @property
    def total(self) -> int:
        return self.tickets + self.tips


@dataclass
class CallRevenue:
    call_id: int
    fan_name: str
    blocks: int                 # blocks charged in the range
    total: int                  # their creator shares, less the shares of blocks refunded in the range
    started_at: datetime | None
    refunded: int = 0           # blocks refunded in the range


def keep_current(creator) -> None:
    """Before a creator's figures are read: if more than `rollups.LIVE_LIMIT` of their
    earnings entries wait above the rollup watermark (the worker is behind), fold
    them into the rollups now, so this page and the next ones read rollups instead
    of re-reading them all (`rollups.catch_up`; commits the session when it does).
    The figures are exact either way. Raises Forbidden ("not_a_creator") for
    non-creators."""
    require_creator(creator, NOT_A_CREATOR)
    rollups.catch_up([queries.account_id(creator.id, "earnings")])


def creator_earnings(creator, range_: str) -> Earnings:
    """Creator shares earned by `creator` in the range, by source — credited to
    their earnings account, less the shares of call blocks refunded in the range
    (payouts are not counted: earned tokens taken out stay earned) — and the
    gross ticket tokens held in escrow for their shows that have not happened
    yet (not earned until the show ends). Raises Forbidden ("not_a_creator") for
    non-creators, InvalidValue for a bad range."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    sums = queries.by_kind(queries.account_ids(creator.id, ["earnings"]), start_day(range_))
    by_source = sources.by_source(sums, EARNING_KINDS)
    return Earnings(range_, sum(by_source.values()), by_source, queries.pending_escrow(creator.id))


def earnings_by_day(creator, range_: str) -> list[DayTotals]:
    """One DayTotals per UTC day of the range, zero days included, oldest first.
    For "all": from the creator's first earning day, at most the last MAX_DAYS
    days. Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    account_id = queries.account_id(creator.id, "earnings")
    start = queries.series_start(account_id, range_)
    return days(start, queries.by_day_source(account_id, start, EARNING_KINDS) if start else {})


def earnings_by_month(creator) -> list[DayTotals]:
    """One DayTotals per calendar month (UTC) from the creator's first earning month
    to this one, at most the last MAX_MONTHS, zero months included, oldest first;
    each one's `day` is the month's first day. Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    account_id = queries.account_id(creator.id, "earnings")
    start = queries.month_series_start(account_id)
    return months(start, queries.by_month_source(account_id, start, EARNING_KINDS) if start else {})


@dataclass
class Series:
    unit: str                   # "day" or "month"
    points: list[DayTotals]     # oldest first; a month's `day` is its first day


def earnings_series(creator, range_: str) -> Series:
    """What the earnings chart of the range shows: per day for today / 7 / 30 days,
    per month for all time (a bar per day over years would be a thousand bars and
    rows that no one can read, and a page whose size grows with the history).
    Raises like `creator_earnings`."""
    range_ = parse_range(range_)
    if range_ == "all":
        return Series("month", earnings_by_month(creator))
    return Series("day", earnings_by_day(creator, range_))


def top_fans(creator, range_: str, limit: int = 10) -> list[FanTotal]:
    """Fans by the creator share earned from them in the range, biggest first
    (ties: lower user id first), zero totals left out. Counts tips and call
    blocks, less the blocks refunded in the range (so a fan can be below zero in
    a range that holds a refund and not its block): a show's ticket money is paid
    out in one settlement for all its fans, so it is not attributed to any one of
    them. Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    account_id, start = queries.account_id(creator.id, "earnings"), start_day(range_)
    if account_id is None or limit < 1:
        return []
    ranked = queries.top_counterparties(account_id, range_, start, limit)
    if ranked is None:  # the ranking index can't say (see top_counterparties): sum them all
        totals = queries.by_counterparty([account_id], start, range_ == "all")
        ranked = sorted(((uid, amount) for uid, amount in totals.items() if amount),
                        key=lambda x: (-x[1], x[0]))[:limit]
    names = queries.names(uid for uid, _ in ranked)
    return [FanTotal(uid, names.get(uid, "?"), amount) for uid, amount in ranked]


def stream_revenue(creator, range_: str, limit: int = 20) -> list[StreamRevenue]:
    """The creator's shows that ran in the range (started, and live or ended in it),
    at most `limit`, most recent first: live ones, then by end time (newest first;
    ties: higher id first). For each, creator shares of its settled tickets (if
    settled in the range) and of the tips sent during it in the range — sums of
    the earnings entries of those transfers (per-stream rollups + tail).
    Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    start = start_day(range_)
    earnings = queries.account_id(creator.id, "earnings") or 0
    rows = queries.stream_revenue_rows(creator.id, earnings, start, limit)
    return [StreamRevenue(r.id, r.title, r.status, int(r.tickets), int(r.tips)) for r in rows]


def call_revenue(creator, range_: str, limit: int = 20) -> list[CallRevenue]:
    """The creator's calls that ran in the range (open, or ended in it) with blocks
    charged or refunded in the range, at most `limit`, most recent first: open
    ones, then by end time (newest first; ties: higher id first). For each, how
    many blocks were charged and refunded in the range and the creator share of
    them net of the refunds — the counts and the sum of the earnings entries of
    its `call_block` and `call_refund` transfers (per-call rollups + tail). A
    refund of a call that ended before the range counts in `creator_earnings`,
    not here. Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    start = start_day(range_)
    earnings = queries.account_id(creator.id, "earnings") or 0
    rows = queries.call_revenue_rows(creator.id, earnings, start, limit)
    return [CallRevenue(r.id, r.fan_name, int(r.blocks), int(r.total), r.accepted_at, int(r.refunded))
            for r in rows]
