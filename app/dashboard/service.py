"""Creator earnings, fan spending and the platform view: every figure the
dashboards show, exact against the ledger entries.

Design note
-----------
Figures are sums of `ledger_entries`. To keep them cheap however long the
history, each query reads the rollups (`app.dashboard.rollups`) for entries up
to the rollup watermark and the entries themselves above it (the "tail": at
most a minute or two of entries, found through the ``(account_id, id)``
index). Both parts are read in one SQL statement, so a rollup run committing in
between can neither double count nor drop an entry.

What a creator's page reads does not grow with history nor with how busy the
range was: totals per day or per kind (a row per day and kind, one per kind for
"all"); top fans as the first rows of a ranking index over the range's moving
window (or all-time totals) plus the tail; the most recent streams and calls
from an index in display order, each with its own rollup rows.

Days are UTC days: an entry belongs to the UTC date of its ``created_at``.
Ranges: "today" = since 00:00 UTC today; "7d" / "30d" = the last 7 / 30 UTC
days including today; "all" = everything. "Now" is `app.calls.service.clock()`
so tests can move it.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import text

from app import ledger
from app.auth.service import require_creator
from app.dashboard import rollups
from app.errors import Forbidden, InvalidValue
from app.extensions import db
from app.ledger.verify import VerifyRun, last_run

RANGES = ("today", "7d", "30d", "all")
SOURCES = ("tips", "tickets", "calls")
NOT_A_CREATOR = "Only creators have earnings."
# Which transfer kinds make each source: on a creator's earnings account ...
EARNING_KINDS = {"tip": "tips", "ticket_settlement": "tickets", "call_block": "calls"}
# ... and on a fan's wallet (a refund counts against tickets).
SPENDING_KINDS = {"tip": "tips", "ticket": "tickets", "ticket_refund": "tickets", "call_block": "calls"}
FEE_KINDS = EARNING_KINDS
MAX_DAYS = 366  # the longest day-by-day series shown ("all" shows the most recent days)
_EPOCH = date(1970, 1, 1)
_WM = "(SELECT last_entry_id FROM rollup_state WHERE id = 1)"
# Tail queries say `id > :w AND id > _WM`: the literal :w (read just before) lets the
# planner see the tail is tiny and use the (account_id, id) index; the subquery,
# read in the same statement as the rollups, keeps the split exact if a rollup run
# commits in between (W only moves forward, except during `rollups.rebuild()`).


def _w() -> int:
    return int(db.session.execute(text(_WM)).scalar_one())


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
class Earnings:
    range: str
    total: int
    by_source: dict[str, int]   # keys exactly "tips", "tickets", "calls"
    pending_escrow: int         # gross ticket tokens held for the creator's unsettled shows

    def to_dict(self) -> dict:
        return {"range": self.range, "total": self.total, "bySource": dict(self.by_source),
                "pendingEscrow": self.pending_escrow}


@dataclass
class DayTotals:
    day: date
    tips: int = 0
    tickets: int = 0
    calls: int = 0

    @property
    def total(self) -> int:
        return self.tips + self.tickets + self.calls


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
    blocks: int
    total: int
    started_at: datetime | None


@dataclass
class CreatorTotal:
    creator_id: int
    display_name: str
    total: int


@dataclass
class Spending:
    range: str
    total: int
    by_type: dict[str, int]     # keys exactly "tips", "tickets", "calls"
    by_creator: list[CreatorTotal]

    def to_dict(self) -> dict:
        return {"range": self.range, "total": self.total, "byType": dict(self.by_type),
                "byCreator": [{"creatorId": c.creator_id, "displayName": c.display_name, "total": c.total}
                              for c in self.by_creator]}


@dataclass
class MonthSpending:
    month: date                 # the first day of the month
    tips: int = 0
    tickets: int = 0
    calls: int = 0
    by_creator: list[CreatorTotal] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.tips + self.tickets + self.calls


@dataclass
class SpendingLine:
    at: datetime
    type: str                   # "tips" | "tickets" | "calls" | "refund"
    creator_name: str
    amount: int                 # tokens out of the wallet (a refund is negative)
    reference: str
    receipt_url: str


@dataclass
class Platform:
    range: str
    fees_by_source: dict[str, int]
    fees_by_day: list[DayTotals]
    tokens_sold: int
    tokens_outstanding: int
    escrow_held: int
    last_verify: VerifyRun | None


# ---- helpers ---------------------------------------------------------------

def _today() -> date:
    return rollups.today()


def _start_day(range_: str) -> date:
    """First UTC day of the range (the epoch for "all")."""
    range_ = parse_range(range_)
    today = _today()
    return {"today": today, "7d": today - timedelta(days=6), "30d": today - timedelta(days=29),
            "all": _EPOCH}[range_]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _account_id(user_id: int, kind: str) -> int | None:
    account = ledger.account_for(user_id, kind)
    return account.id if account else None


def _names(user_ids) -> dict[int, str]:
    ids = [i for i in set(user_ids) if i is not None]
    if not ids:
        return {}
    rows = db.session.execute(text("SELECT id, display_name FROM users WHERE id = ANY(:ids)"), {"ids": ids})
    return {r.id: r.display_name for r in rows}


def _by_kind(account_id: int | None, start: date) -> dict[str, int]:
    """Sum of the account's entries per transfer kind since `start` (rollups + tail)."""
    if account_id is None:
        return {}
    # All time: one row per kind, not one per day of history.
    rolled = ("SELECT transfer_kind AS kind, amount FROM rollup_total WHERE account_id = :a" if start == _EPOCH else
              "SELECT transfer_kind AS kind, amount FROM rollup_daily WHERE account_id = :a AND day >= :d")
    rows = db.session.execute(text(f"""
        SELECT kind, sum(amount) AS amount FROM (
            {rolled}
            UNION ALL
            SELECT t.kind, e.amount FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
             WHERE e.account_id = :a AND e.id > :w AND e.id > {_WM} AND e.created_at >= :ts) x
        GROUP BY kind"""), {"a": account_id, "d": start, "ts": _midnight(start), "w": _w()})
    return {r.kind: int(r.amount) for r in rows}


def _by_day_source(account_id: int | None, start: date, kinds: dict[str, str]) -> dict[date, tuple[int, ...]]:
    """Per UTC day since `start`: the sums of the account's entries of each source
    (a tuple in SOURCES order; `kinds` maps transfer kinds to sources), days with
    entries only. Summed per day in SQL: a year of days is a row per day."""
    if account_id is None:
        return {}
    columns = ", ".join(
        f"coalesce(sum(amount) FILTER (WHERE kind = ANY(:k_{source})), 0)" for source in SOURCES)
    params = {"a": account_id, "d": start, "ts": _midnight(start), "w": _w(),
              **{f"k_{source}": [k for k, s in kinds.items() if s == source] for source in SOURCES}}
    rows = db.session.execute(text(f"""
        SELECT day, {columns} FROM (
            SELECT day, transfer_kind AS kind, amount FROM rollup_daily WHERE account_id = :a AND day >= :d
            UNION ALL
            SELECT (e.created_at AT TIME ZONE 'UTC')::date, t.kind, e.amount
              FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
             WHERE e.account_id = :a AND e.id > :w AND e.id > {_WM} AND e.created_at >= :ts) x
        GROUP BY day"""), params).all()
    return {r[0]: tuple(int(v) for v in r[1:]) for r in rows}


def _first_day(account_id: int) -> date | None:
    return db.session.execute(text(f"""
        SELECT least((SELECT min(day) FROM rollup_daily WHERE account_id = :a),
                     (SELECT min((e.created_at AT TIME ZONE 'UTC')::date) FROM ledger_entries e
                       WHERE e.account_id = :a AND e.id > :w AND e.id > {_WM}))"""), {"a": account_id, "w": _w()}).scalar_one()


def _series_start(account_id: int | None, range_: str) -> date | None:
    """First day of a day-by-day series: the range's, or for "all" the account's
    first day (at most MAX_DAYS back); None when "all" has nothing to show."""
    start = _start_day(range_)
    if range_ != "all":
        return start
    first = _first_day(account_id) if account_id is not None else None
    if first is None:
        return None
    return max(first, _today() - timedelta(days=MAX_DAYS - 1))


def _days(start: date | None, by_day: dict[date, tuple[int, ...]]) -> list[DayTotals]:
    if start is None:
        return []
    out, day, today, zero = [], start, _today(), (0,) * len(SOURCES)
    while day <= today:
        out.append(DayTotals(day, *by_day.get(day, zero)))
        day += timedelta(days=1)
    return out


# The top `n` counterparties of an earnings account from a ranking index — the
# moving window of the range (`rollup_pair_window`) or the all-time totals
# (`rollup_pair_total`) — plus every counterparty with money the ranked rows do not
# hold yet ("extra": the tail above W and, for a window, rolled days after today),
# each with its full amount. One statement, so W and D are those of the rows read.
_TOP = """
WITH st AS MATERIALIZED (SELECT last_entry_id AS w, window_day AS d FROM rollup_state WHERE id = 1),
extra AS MATERIALIZED (
    SELECT counterparty_id, sum(amount) AS amount FROM (
        {late}
        SELECT counterparty_id, amount FROM dashboard_entry_facts
         WHERE account_id = :a AND id > :w AND id > (SELECT w FROM st) AND created_at >= :ts
           AND counterparty_id IS NOT NULL) x
    GROUP BY counterparty_id),
top AS MATERIALIZED (
    SELECT counterparty_id, amount FROM {table} WHERE account_id = :a {span}
     ORDER BY amount DESC, counterparty_id LIMIT :n),
cand AS (SELECT counterparty_id FROM top UNION SELECT counterparty_id FROM extra)
SELECT st.d, (SELECT count(*) FROM top) AS top_rows, (SELECT min(amount) FROM top) AS top_min,
       (SELECT min(amount) FROM extra) AS extra_min,
       c.counterparty_id, coalesce(r.amount, 0) + coalesce(e.amount, 0) AS amount
  FROM st
  LEFT JOIN cand c ON true
  LEFT JOIN {table} r ON r.account_id = :a {span_r} AND r.counterparty_id = c.counterparty_id
  LEFT JOIN extra e ON e.counterparty_id = c.counterparty_id
"""


def _top_counterparties(account_id: int, range_: str, start: date, n: int) -> list[tuple[int, int]] | None:
    """The `n` first (counterparty, amount) of the range, ranked by amount then id,
    zero totals left out — reading about `n` ranked rows plus the extra ones, however
    many counterparties the range has; None when the ranking index cannot answer
    exactly (the caller then sums every counterparty).

    Exact when every extra amount is >= 0 and the `n` ranked rows are > 0 (or fewer
    than `n` exist): a counterparty outside both sets keeps its ranked amount, and
    `n` candidates ranked ahead of it can only have gained. So: None if the window
    is not today's (D moves in the first rollup run after midnight), if some extra
    amount is negative, or if a ranked row is <= 0."""
    window = range_ != "all"
    sql = _TOP.format(
        table="rollup_pair_window" if window else "rollup_pair_total",
        span="AND span = :span" if window else "", span_r="AND r.span = :span" if window else "",
        late=("SELECT counterparty_id, amount FROM rollup_daily_pair "
              "WHERE account_id = :a AND day > :today UNION ALL") if window else "")
    today = _today()
    # `day > :today`, not `> D`: the answer is only used when D is today (checked
    # below), and a literal lets the planner see the range is (nearly always) empty.
    rows = db.session.execute(text(sql), {"a": account_id, "w": _w(), "ts": _midnight(start), "n": n,
                                          "span": rollups.WINDOW_SPANS.get(range_), "today": today}).all()
    head = rows[0]
    if window and head.d != today:
        return None
    if head.extra_min is not None and head.extra_min < 0:
        return None
    if head.top_rows == n and head.top_min <= 0:
        return None
    ranked = [(r.counterparty_id, int(r.amount)) for r in rows if r.counterparty_id is not None and r.amount]
    return sorted(ranked, key=lambda x: (-x[1], x[0]))[:n]


def _by_counterparty(account_id: int | None, start: date, all_time: bool) -> dict[int, int]:
    """Sum per counterparty since `start` (the fans of an earnings account, the
    creators of a wallet); "all" reads the all-time totals."""
    if account_id is None:
        return {}
    rolled = ("SELECT counterparty_id, amount FROM rollup_pair_total WHERE account_id = :a" if all_time else
              "SELECT counterparty_id, amount FROM rollup_daily_pair WHERE account_id = :a AND day >= :d")
    rows = db.session.execute(text(f"""
        SELECT counterparty_id, sum(amount) AS amount FROM (
            {rolled}
            UNION ALL
            SELECT counterparty_id, amount FROM dashboard_entry_facts
             WHERE account_id = :a AND id > :w AND id > {_WM} AND created_at >= :ts AND counterparty_id IS NOT NULL) x
        GROUP BY counterparty_id"""), {"a": account_id, "d": start, "ts": _midnight(start), "w": _w()})
    return {r.counterparty_id: int(r.amount) for r in rows}


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """A text cell a spreadsheet will not run: formula-like values get a leading `'`."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_lines(header: list[str], rows: Iterator[list]) -> Iterator[str]:
    """CSV text in chunks of ~500 lines (one chunk per write keeps streaming cheap)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _stream_rows(sql: str, params: dict) -> Iterator:
    """Rows of `sql` through a server-side cursor on a connection of its own, so an
    export of a million rows holds a few hundred at a time."""
    with db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=2000).execute(text(sql), params)
        yield from result
        conn.rollback()


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- creator ---------------------------------------------------------------

def creator_earnings(creator, range_: str) -> Earnings:
    """Creator shares credited to `creator`'s earnings account in the range, by
    source, and the gross ticket tokens held in escrow for their shows that have
    not happened yet (not earned until the show ends). Raises Forbidden
    ("not_a_creator") for non-creators, InvalidValue for a bad range."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    kinds = _by_kind(_account_id(creator.id, "earnings"), _start_day(range_))
    by_source = {source: 0 for source in SOURCES}
    for kind, source in EARNING_KINDS.items():
        by_source[source] += kinds.get(kind, 0)
    return Earnings(range_, sum(by_source.values()), by_source, _pending_escrow(creator.id))


def _pending_escrow(creator_id: int) -> int:
    """Escrow balance (rollups + tail) of the creator's shows not yet ended or canceled."""
    return int(db.session.execute(text(f"""
        WITH acc AS (SELECT escrow_account_id AS id FROM streams
                      WHERE creator_id = :c AND ended_at IS NULL AND escrow_account_id IS NOT NULL
                        AND status IN ('scheduled', 'live'))
        SELECT coalesce(sum(amount), 0) FROM (
            SELECT r.amount FROM rollup_total r WHERE r.account_id IN (SELECT id FROM acc)
            UNION ALL
            SELECT e.amount FROM ledger_entries e WHERE e.account_id IN (SELECT id FROM acc) AND e.id > :w AND e.id > {_WM}) x
        """), {"c": creator_id, "w": _w()}).scalar_one())


def earnings_by_day(creator, range_: str) -> list[DayTotals]:
    """One DayTotals per UTC day of the range, zero days included, oldest first.
    For "all": from the creator's first earning day, at most the last MAX_DAYS
    days. Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    account_id = _account_id(creator.id, "earnings")
    start = _series_start(account_id, range_)
    return _days(start, _by_day_source(account_id, start, EARNING_KINDS) if start else {})


def top_fans(creator, range_: str, limit: int = 10) -> list[FanTotal]:
    """Fans by the creator share earned from them in the range, biggest first
    (ties: lower user id first). Counts tips and call blocks: a show's ticket
    money is paid out in one settlement for all its fans, so it is not
    attributed to any one of them. Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    account_id, start = _account_id(creator.id, "earnings"), _start_day(range_)
    if account_id is None or limit < 1:
        return []
    ranked = _top_counterparties(account_id, range_, start, limit)
    if ranked is None:  # the ranking index can't say (see _top_counterparties): sum them all
        totals = _by_counterparty(account_id, start, range_ == "all")
        ranked = sorted(((uid, amount) for uid, amount in totals.items() if amount),
                        key=lambda x: (-x[1], x[0]))[:limit]
    names = _names(uid for uid, _ in ranked)
    return [FanTotal(uid, names.get(uid, "?"), amount) for uid, amount in ranked]


# Most recent first, bounded: shows / calls still running (no end: infinity) and then
# by end time, read in that order from ix_*_creator_id_recent (migration 0010) and
# stopping at the range's start — the history before it is never read.
_RECENT = "coalesce({t}.ended_at, 'infinity'::timestamptz)"


def stream_revenue(creator, range_: str, limit: int = 20) -> list[StreamRevenue]:
    """The creator's shows that ran in the range (started, and live or ended in it),
    at most `limit`, most recent first: live ones, then by end time (newest first;
    ties: higher id first). For each, creator shares of its settled tickets (if
    settled in the range) and of the tips sent during it in the range — sums of
    the earnings entries of those transfers (per-stream rollups + tail).
    Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    start = _start_day(range_)
    earnings = _account_id(creator.id, "earnings") or 0
    recent = _RECENT.format(t="streams")
    rows = db.session.execute(text(f"""
        WITH s AS MATERIALIZED (
            SELECT id, title, status, {recent} AS until FROM streams
             WHERE creator_id = :c AND {recent} >= :ts AND started_at IS NOT NULL
             ORDER BY {recent} DESC, id DESC LIMIT :limit),
        m AS (
            SELECT ref_id, transfer_kind, amount FROM rollup_daily_ref
             WHERE account_id = :earn AND ref_type = 'stream' AND ref_id IN (SELECT id FROM s) AND day >= :d
            UNION ALL
            SELECT ref_id, transfer_kind, amount FROM dashboard_entry_facts
             WHERE account_id = :earn AND id > :w AND id > {_WM} AND created_at >= :ts AND ref_type = 'stream')
        SELECT s.id, s.title, s.status,
               coalesce(sum(m.amount) FILTER (WHERE m.transfer_kind = 'ticket_settlement'), 0) AS tickets,
               coalesce(sum(m.amount) FILTER (WHERE m.transfer_kind = 'tip'), 0) AS tips
          FROM s LEFT JOIN m ON m.ref_id = s.id
         GROUP BY s.id, s.title, s.status, s.until
         ORDER BY s.until DESC, s.id DESC"""),
        {"c": creator.id, "ts": _midnight(start), "d": start, "earn": earnings, "limit": limit, "w": _w()})
    return [StreamRevenue(r.id, r.title, r.status, int(r.tickets), int(r.tips)) for r in rows]


def call_revenue(creator, range_: str, limit: int = 20) -> list[CallRevenue]:
    """The creator's calls with blocks charged in the range, at most `limit`, most
    recent first: open ones, then by end time (newest first; ties: higher id first).
    For each, how many blocks were charged in the range and the creator share of
    them — the count and sum of the earnings entries of its `call_block` transfers
    (per-call rollups + tail). Raises like `creator_earnings`."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    start = _start_day(range_)
    earnings = _account_id(creator.id, "earnings") or 0
    recent = _RECENT.format(t="c")
    rows = db.session.execute(text(f"""
        WITH tail AS MATERIALIZED (
            SELECT ref_id, amount FROM dashboard_entry_facts
             WHERE account_id = :earn AND id > :w AND id > {_WM} AND created_at >= :ts
               AND ref_type = 'call' AND transfer_kind = 'call_block')
        SELECT c.id, u.display_name AS fan_name, c.accepted_at, x.blocks, x.total
          FROM calls c
          JOIN users u ON u.id = c.fan_id
          CROSS JOIN LATERAL (
              SELECT coalesce(sum(n), 0) AS blocks, coalesce(sum(amount), 0) AS total FROM (
                  SELECT entries AS n, amount FROM rollup_daily_ref
                   WHERE account_id = :earn AND ref_type = 'call' AND ref_id = c.id AND day >= :d
                     AND transfer_kind = 'call_block'
                  UNION ALL
                  SELECT 1, amount FROM tail WHERE tail.ref_id = c.id) y) x
         WHERE c.creator_id = :c AND {recent} >= :ts AND c.accepted_at IS NOT NULL AND c.blocks_charged > 0
           AND x.blocks > 0
         ORDER BY {recent} DESC, c.id DESC LIMIT :limit"""),
        {"c": creator.id, "ts": _midnight(start), "d": start, "earn": earnings, "limit": limit, "w": _w()})
    return [CallRevenue(r.id, r.fan_name, int(r.blocks), int(r.total), r.accepted_at) for r in rows]


EARNINGS_CSV_HEADER = ["date", "source", "fan", "gross", "creator_share", "platform_fee", "reference"]


def _first_entry_id(account_id: int, start: date) -> int:
    """No entry of the account dated `start` or later has a smaller id than this."""
    return int(db.session.execute(text(f"""
        SELECT least(coalesce((SELECT min(min_entry_id) FROM rollup_daily WHERE account_id = :a AND day >= :d),
                              {_WM} + 1), {_WM} + 1)"""), {"a": account_id, "d": start}).scalar_one())


def export_earnings_csv(creator, range_: str) -> Iterator[str]:
    """CSV text (header, then one line per earning entry in the range, oldest
    first): date (UTC), source, fan display name (empty for a show's
    settlement), gross, creator share, platform fee, reference (the transfer's
    key). Streamed from a server-side cursor: constant memory. Text cells that a
    spreadsheet would read as a formula start with `'`. Raises like
    `creator_earnings` (before the first chunk)."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    start = _start_day(range_)
    account_id = _account_id(creator.id, "earnings")
    if account_id is None:
        return _csv_lines(EARNINGS_CSV_HEADER, iter(()))
    params = {"a": account_id, "lo": _first_entry_id(account_id, start), "ts": _midnight(start),
              "fees": ledger.system_account("platform_fees").id}
    db.session.commit()  # nothing held open while the export streams
    sql = """
        SELECT e.created_at, t.kind, t.idempotency_key, e.amount, x.gross, x.fee,
               CASE WHEN x.wallets = 1 THEN u.display_name END AS fan
          FROM ledger_entries e
          JOIN ledger_transfers t ON t.id = e.transfer_id
          CROSS JOIN LATERAL (
              SELECT sum(e2.amount) FILTER (WHERE e2.amount > 0) AS gross,
                     coalesce(sum(e2.amount) FILTER (WHERE e2.account_id = :fees), 0) AS fee,
                     min(a2.user_id) FILTER (WHERE a2.kind = 'wallet') AS fan_id,
                     count(*) FILTER (WHERE a2.kind = 'wallet') AS wallets
                FROM ledger_entries e2 JOIN ledger_accounts a2 ON a2.id = e2.account_id
               WHERE e2.transfer_id = e.transfer_id) x
          LEFT JOIN users u ON u.id = x.fan_id
         WHERE e.account_id = :a AND e.id >= :lo AND e.created_at >= :ts
         ORDER BY e.id"""
    rows = ([_iso(r.created_at), EARNING_KINDS.get(r.kind, r.kind), csv_safe(r.fan), int(r.gross or 0),
             int(r.amount), int(r.fee), csv_safe(r.idempotency_key)] for r in _stream_rows(sql, params))
    return _csv_lines(EARNINGS_CSV_HEADER, rows)


# ---- fan -------------------------------------------------------------------

def _spending_from(kinds: dict[str, int]) -> dict[str, int]:
    by_type = {source: 0 for source in SOURCES}
    for kind, source in SPENDING_KINDS.items():
        by_type[source] -= kinds.get(kind, 0)  # wallet debits are negative entries
    return by_type


def fan_spending(user, range_: str) -> Spending:
    """Tokens out of `user`'s own wallet in the range (tips, tickets net of
    refunds, call blocks; purchases are not spending), by type and by creator
    (biggest first). Raises InvalidValue for a bad range."""
    range_ = parse_range(range_)
    start = _start_day(range_)
    wallet = _account_id(user.id, "wallet")
    by_type = _spending_from(_by_kind(wallet, start))
    per_creator = {cid: -amount for cid, amount in _by_counterparty(wallet, start, range_ == "all").items()
                   if amount}
    names = _names(per_creator)
    by_creator = [CreatorTotal(cid, names.get(cid, "?"), total)
                  for cid, total in sorted(per_creator.items(), key=lambda x: (-x[1], x[0]))]
    return Spending(range_, sum(by_type.values()), by_type, by_creator)


def spending_by_month(user, months: int = 12) -> list[MonthSpending]:
    """The last `months` calendar months (UTC) with any spending, newest first,
    each by type and by creator."""
    months = max(1, min(int(months), 120))
    today = _today()
    first = date(today.year, today.month, 1)
    for _ in range(months - 1):
        first = date(first.year - (first.month == 1), 12 if first.month == 1 else first.month - 1, 1)
    wallet = _account_id(user.id, "wallet")
    if wallet is None:
        return []
    params = {"a": wallet, "d": first, "ts": _midnight(first), "w": _w()}
    kind_rows = db.session.execute(text(f"""
        SELECT date_trunc('month', day)::date AS month, kind, sum(amount) AS amount FROM (
            SELECT day, transfer_kind AS kind, amount FROM rollup_daily WHERE account_id = :a AND day >= :d
            UNION ALL
            SELECT (e.created_at AT TIME ZONE 'UTC')::date, t.kind, e.amount
              FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
             WHERE e.account_id = :a AND e.id > :w AND e.id > {_WM} AND e.created_at >= :ts) x
        GROUP BY 1, 2"""), params)
    pair_rows = db.session.execute(text(f"""
        SELECT date_trunc('month', day)::date AS month, counterparty_id, sum(amount) AS amount FROM (
            SELECT day, counterparty_id, amount FROM rollup_daily_pair WHERE account_id = :a AND day >= :d
            UNION ALL
            SELECT day, counterparty_id, amount FROM dashboard_entry_facts
             WHERE account_id = :a AND id > :w AND id > {_WM} AND created_at >= :ts AND counterparty_id IS NOT NULL) x
        GROUP BY 1, 2"""), params).all()
    by_month: dict[date, dict[str, int]] = {}
    for r in kind_rows:
        by_month.setdefault(r.month, {})[r.kind] = int(r.amount)
    names = _names(r.counterparty_id for r in pair_rows)
    out = []
    for month in sorted(by_month, reverse=True):
        by_type = _spending_from(by_month[month])
        if not any(by_type.values()):
            continue
        creators = sorted(((r.counterparty_id, -int(r.amount)) for r in pair_rows if r.month == month and r.amount),
                          key=lambda x: (-x[1], x[0]))
        out.append(MonthSpending(month, by_type["tips"], by_type["tickets"], by_type["calls"],
                                 [CreatorTotal(cid, names.get(cid, "?"), t) for cid, t in creators]))
    return out


_LINE_TYPES = {"tip": "tips", "ticket": "tickets", "ticket_refund": "refund", "call_block": "calls"}


def _reference(kind: str, metadata: dict, amount: int) -> str:
    from app.wallet.service import describe
    if kind == "call_block" and "callId" in metadata:
        return f"Call #{metadata['callId']}, block {int(metadata.get('blockIndex', 0)) + 1}"
    return describe(kind, metadata, abs(amount))


def spending_lines(user, range_: str, limit: int = 50) -> list[SpendingLine]:
    """The user's latest spending entries in the range (tips, tickets, ticket
    refunds, call blocks), newest first; `amount` is tokens out of the wallet
    (a refund is negative); `receipt_url` is the wallet receipt of the transfer."""
    range_ = parse_range(range_)
    wallet = _account_id(user.id, "wallet")
    if wallet is None:
        return []
    limit = max(1, min(int(limit), 500))
    rows = db.session.execute(text("""
        SELECT f.created_at, f.transfer_kind, f.amount, f.transfer_id, f.counterparty_id, t.metadata
          FROM dashboard_entry_facts f JOIN ledger_transfers t ON t.id = f.transfer_id
         WHERE f.account_id = :a AND f.created_at >= :ts AND f.transfer_kind = ANY(:kinds)
         ORDER BY f.id DESC LIMIT :limit"""),
        {"a": wallet, "ts": _midnight(_start_day(range_)), "kinds": list(_LINE_TYPES), "limit": limit}).all()
    names = _names(r.counterparty_id for r in rows)
    return [SpendingLine(r.created_at, _LINE_TYPES[r.transfer_kind], names.get(r.counterparty_id, ""), -int(r.amount),
                         _reference(r.transfer_kind, r.metadata or {}, int(r.amount)),
                         f"/wallet/receipts/{r.transfer_id}") for r in rows]


SPENDING_CSV_HEADER = ["date", "type", "creator", "amount", "reference"]


def export_spending_csv(user, range_: str) -> Iterator[str]:
    """CSV text: header, then one line per spending entry of the user's wallet in
    the range, oldest first (date UTC, type, creator, tokens out — a refund is
    negative —, reference). Streamed like `export_earnings_csv`."""
    range_ = parse_range(range_)
    start = _start_day(range_)
    wallet = _account_id(user.id, "wallet")
    if wallet is None:
        return _csv_lines(SPENDING_CSV_HEADER, iter(()))
    params = {"a": wallet, "lo": _first_entry_id(wallet, start), "ts": _midnight(start),
              "kinds": list(_LINE_TYPES)}
    db.session.commit()
    sql = """
        SELECT f.created_at, f.transfer_kind, f.amount, t.metadata, u.display_name AS creator
          FROM dashboard_entry_facts f
          JOIN ledger_transfers t ON t.id = f.transfer_id
          LEFT JOIN users u ON u.id = f.counterparty_id
         WHERE f.account_id = :a AND f.id >= :lo AND f.created_at >= :ts AND f.transfer_kind = ANY(:kinds)
         ORDER BY f.id"""
    rows = ([_iso(r.created_at), _LINE_TYPES[r.transfer_kind], csv_safe(r.creator), -int(r.amount),
             csv_safe(_reference(r.transfer_kind, r.metadata or {}, int(r.amount)))]
            for r in _stream_rows(sql, params))
    return _csv_lines(SPENDING_CSV_HEADER, rows)


# ---- platform --------------------------------------------------------------

def platform_overview(user, range_: str) -> Platform:
    """Platform fees by source and by UTC day in the range, tokens sold in the
    range, tokens outstanding in wallets and held in escrow now, and the last
    `flask ledger verify` result. Raises Forbidden ("not_an_operator") unless
    `user.is_operator`, InvalidValue for a bad range."""
    if not getattr(user, "is_operator", False):
        raise Forbidden("The platform view is for operators.", "not_an_operator")
    range_ = parse_range(range_)
    start = _start_day(range_)
    fees_id = ledger.system_account("platform_fees").id
    kinds = _by_kind(fees_id, start)
    fees_by_source = {source: 0 for source in SOURCES}
    for kind, source in FEE_KINDS.items():
        fees_by_source[source] += kinds.get(kind, 0)
    day_start = _series_start(fees_id, range_)
    fees_by_day = _days(day_start, _by_day_source(fees_id, day_start, FEE_KINDS) if day_start else {})
    sold = -_by_kind(ledger.system_account("token_sales").id, start).get("purchase", 0)
    held = {r.account_kind: int(r.amount) for r in db.session.execute(text(f"""
        SELECT account_kind, sum(amount) AS amount FROM (
            SELECT account_kind, amount FROM rollup_kind_daily WHERE account_kind IN ('wallet', 'escrow')
            UNION ALL
            SELECT a.kind, e.amount FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
             WHERE e.id > :w AND e.id > {_WM} AND a.kind IN ('wallet', 'escrow')) x
        GROUP BY account_kind"""), {"w": _w()})}
    return Platform(range_, fees_by_source, fees_by_day, sold, held.get("wallet", 0), held.get("escrow", 0),
                    last_run())
