"""Every SQL statement the dashboards run, and the small functions that run them.

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

Every value is a bound parameter. The statements are put together once, when
this module loads, from fixed fragments of this module (the watermark
subquery, which rollup table a range reads); nothing from a request is ever
formatted into SQL.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from itertools import groupby

from sqlalchemy import text

from app import ledger
from app.dashboard import rollups
from app.dashboard.facts import FACTS
from app.ledger import TransferKind
from app.dashboard.ranges import EPOCH, MAX_DAYS, MAX_MONTHS, add_months, midnight, month_start, start_day, today
from app.dashboard.sources import SOURCES
from app.extensions import db

_WM = "(SELECT last_entry_id FROM rollup_state WHERE id = 1)"
# Tail queries say `id > :w AND id > _WM`: the literal :w (read just before) lets the
# planner see the tail is tiny and use the (account_id, id) index; the subquery,
# read in the same statement as the rollups, keeps the split exact if a rollup run
# commits in between (W only moves forward, except during `rollups.rebuild()`).


# Read before each statement that reads the tail, it also turns PostgreSQL's JIT off
# for the rest of the transaction (set_config(..., true) is SET LOCAL), in the same
# round trip. The facts view's per-entry lookups make the planner price a tail of a
# few thousand entries above jit_above_cost, and compiling the plan then took
# 1.2 s of a 1.3 s top-fans query (EXPLAIN ANALYZE, bench/dashboard.py's backlog)
# whose rows take 60 ms to read: these statements read too few rows for JIT to pay.
_WM_NO_JIT = "SELECT last_entry_id, set_config('jit', 'off', true) FROM rollup_state WHERE id = 1"


def watermark() -> int:
    """The rollup watermark W (see the design note); turns JIT off for the rest of
    the session's transaction (see _WM_NO_JIT)."""
    return int(db.session.execute(text(_WM_NO_JIT)).first()[0])


def account_id(user_id: int, kind: str) -> int | None:
    """The id of the user's ledger account of `kind`, None if they have none yet."""
    account = ledger.account_for(user_id, kind)
    return account.id if account else None


def account_ids(user_id: int, kinds) -> list[int]:
    """The ids of the user's ledger accounts of these kinds that exist."""
    return [i for i in (account_id(user_id, kind) for kind in kinds) if i is not None]


def names(user_ids) -> dict[int, str]:
    ids = [i for i in set(user_ids) if i is not None]
    if not ids:
        return {}
    rows = db.session.execute(text("SELECT id, display_name FROM users WHERE id = ANY(:ids)"), {"ids": ids})
    return {r.id: r.display_name for r in rows}


def handles(user_ids) -> dict[int, str]:
    """The creator-page handles (/c/<handle>) of those of these users that have one."""
    ids = [i for i in set(user_ids) if i is not None]
    if not ids:
        return {}
    rows = db.session.execute(text("SELECT id, handle FROM users WHERE id = ANY(:ids) AND handle IS NOT NULL"),
                              {"ids": ids})
    return {r.id: r.handle for r in rows}


# ---- sums of one account ---------------------------------------------------

_BY_KIND = """
        SELECT kind, sum(amount) AS amount FROM (
            {rolled}
            UNION ALL
            SELECT t.kind, e.amount FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
             WHERE e.account_id = ANY(:a) AND e.id > :w AND e.id > {wm} AND e.created_at >= :ts) x
        GROUP BY kind"""
# All time: one row per kind, not one per day of history.
_BY_KIND_ALL = _BY_KIND.format(
    rolled="SELECT transfer_kind AS kind, amount FROM rollup_total WHERE account_id = ANY(:a)", wm=_WM)
_BY_KIND_SINCE = _BY_KIND.format(
    rolled="SELECT transfer_kind AS kind, amount FROM rollup_daily WHERE account_id = ANY(:a) AND day >= :d",
    wm=_WM)


def by_kind(accounts: list[int], start: date) -> dict[str, int]:
    """Sum of the accounts' entries per transfer kind since `start` (rollups + tail)."""
    if not accounts:
        return {}
    rows = db.session.execute(text(_BY_KIND_ALL if start == EPOCH else _BY_KIND_SINCE),
                              {"a": list(accounts), "d": start, "ts": midnight(start), "w": watermark()})
    return {r.kind: int(r.amount) for r in rows}


_SOURCE_PARAMS = {source: f"k_{source}" for source in SOURCES}  # the bound list of each source's kinds
_BY_BUCKET_SOURCE = """
        SELECT {bucket} AS bucket, {columns} FROM (
            SELECT day, transfer_kind AS kind, amount FROM rollup_daily WHERE account_id = :a AND day >= :d
            UNION ALL
            SELECT (e.created_at AT TIME ZONE 'UTC')::date, t.kind, e.amount
              FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
             WHERE e.account_id = :a AND e.id > :w AND e.id > {wm} AND e.created_at >= :ts) x
        GROUP BY 1"""
_BY_SOURCE_COLUMNS = ", ".join(f"coalesce(sum(amount) FILTER (WHERE kind = ANY(:{_SOURCE_PARAMS[source]})), 0)"
                               for source in SOURCES)
_BY_DAY_SOURCE = _BY_BUCKET_SOURCE.format(bucket="day", columns=_BY_SOURCE_COLUMNS, wm=_WM)
_BY_MONTH_SOURCE = _BY_BUCKET_SOURCE.format(bucket="date_trunc('month', day)::date", columns=_BY_SOURCE_COLUMNS,
                                            wm=_WM)


def _by_bucket_source(sql: str, account_id: int | None, start: date, kinds: dict[str, str]) -> dict:
    if account_id is None:
        return {}
    params = {"a": account_id, "d": start, "ts": midnight(start), "w": watermark(),
              **{_SOURCE_PARAMS[source]: [k for k, s in kinds.items() if s == source] for source in SOURCES}}
    rows = db.session.execute(text(sql), params).all()
    return {r[0]: tuple(int(v) for v in r[1:]) for r in rows}


def by_day_source(account_id: int | None, start: date, kinds: dict[str, str]) -> dict[date, tuple[int, ...]]:
    """Per UTC day since `start`: the sums of the account's entries of each source
    (a tuple in SOURCES order; `kinds` maps transfer kinds to sources), days with
    entries only. Summed per day in SQL: a year of days is a row per day."""
    return _by_bucket_source(_BY_DAY_SOURCE, account_id, start, kinds)


def by_month_source(account_id: int | None, start: date, kinds: dict[str, str]) -> dict[date, tuple[int, ...]]:
    """Like `by_day_source`, per calendar month (UTC) since `start` (a month's first
    day), keyed by the month's first day: five years are 60 rows."""
    return _by_bucket_source(_BY_MONTH_SOURCE, account_id, start, kinds)


_FIRST_DAY = f"""
        SELECT least((SELECT min(day) FROM rollup_daily WHERE account_id = :a),
                     (SELECT min((e.created_at AT TIME ZONE 'UTC')::date) FROM ledger_entries e
                       WHERE e.account_id = :a AND e.id > :w AND e.id > {_WM}))"""


def first_day(account_id: int) -> date | None:
    return db.session.execute(text(_FIRST_DAY), {"a": account_id, "w": watermark()}).scalar_one()


def series_start(account_id: int | None, range_: str) -> date | None:
    """First day of a day-by-day series: the range's, or for "all" the account's
    first day (at most MAX_DAYS back); None when "all" has nothing to show."""
    start = start_day(range_)
    if range_ != "all":
        return start
    first = first_day(account_id) if account_id is not None else None
    if first is None:
        return None
    return max(first, today() - timedelta(days=MAX_DAYS - 1))


def month_series_start(account_id: int | None) -> date | None:
    """First month (its first day) of a month-by-month series of all time: the
    account's first month, at most MAX_MONTHS back; None when it has no entries."""
    first = first_day(account_id) if account_id is not None else None
    if first is None:
        return None
    return max(month_start(first), add_months(month_start(today()), -(MAX_MONTHS - 1)))


# ---- sums per counterparty -------------------------------------------------

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
        SELECT counterparty_id, amount FROM {facts} f
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
_TOP_WINDOW = _TOP.format(
    facts=FACTS, table="rollup_pair_window", span="AND span = :span", span_r="AND r.span = :span",
    late="SELECT counterparty_id, amount FROM rollup_daily_pair WHERE account_id = :a AND day > :today UNION ALL")
_TOP_ALL = _TOP.format(facts=FACTS, table="rollup_pair_total", span="", span_r="", late="")


def top_counterparties(account_id: int, range_: str, start: date, n: int) -> list[tuple[int, int]] | None:
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
    today_ = today()
    # `day > :today`, not `> D`: the answer is only used when D is today (checked
    # below), and a literal lets the planner see the range is (nearly always) empty.
    rows = db.session.execute(text(_TOP_WINDOW if window else _TOP_ALL),
                              {"a": account_id, "w": watermark(), "ts": midnight(start), "n": n,
                               "span": rollups.WINDOW_SPANS.get(range_), "today": today_}).all()
    head = rows[0]
    if window and head.d != today_:
        return None
    if head.extra_min is not None and head.extra_min < 0:
        return None
    if head.top_rows == n and head.top_min <= 0:
        return None
    ranked = [(r.counterparty_id, int(r.amount)) for r in rows if r.counterparty_id is not None and r.amount]
    return sorted(ranked, key=lambda x: (-x[1], x[0]))[:n]


_BY_COUNTERPARTY = """
        SELECT counterparty_id, sum(amount) AS amount FROM (
            {rolled}
            UNION ALL
            SELECT counterparty_id, amount FROM {facts} f
             WHERE account_id = ANY(:a) AND id > :w AND id > {wm} AND created_at >= :ts
               AND counterparty_id IS NOT NULL) x
        GROUP BY counterparty_id"""
_BY_COUNTERPARTY_ALL = _BY_COUNTERPARTY.format(
    rolled="SELECT counterparty_id, amount FROM rollup_pair_total WHERE account_id = ANY(:a)", wm=_WM, facts=FACTS)
_BY_COUNTERPARTY_SINCE = _BY_COUNTERPARTY.format(
    rolled="SELECT counterparty_id, amount FROM rollup_daily_pair WHERE account_id = ANY(:a) AND day >= :d",
    wm=_WM, facts=FACTS)


def by_counterparty(accounts: list[int], start: date, all_time: bool) -> dict[int, int]:
    """Sum per counterparty of the accounts since `start` (the fans of an earnings
    account, the creators of a fan's wallet and debt); "all" reads the all-time totals."""
    if not accounts:
        return {}
    rows = db.session.execute(text(_BY_COUNTERPARTY_ALL if all_time else _BY_COUNTERPARTY_SINCE),
                              {"a": list(accounts), "d": start, "ts": midnight(start), "w": watermark()})
    return {r.counterparty_id: int(r.amount) for r in rows}


# ---- a creator's shows and calls -------------------------------------------

_PENDING_ESCROW = f"""
        WITH acc AS (SELECT escrow_account_id AS id FROM streams
                      WHERE creator_id = :c AND ended_at IS NULL AND escrow_account_id IS NOT NULL
                        AND status IN ('scheduled', 'live'))
        SELECT coalesce(sum(amount), 0) FROM (
            SELECT r.amount FROM rollup_total r WHERE r.account_id IN (SELECT id FROM acc)
            UNION ALL
            SELECT e.amount FROM ledger_entries e WHERE e.account_id IN (SELECT id FROM acc) AND e.id > :w AND e.id > {_WM}) x
        """


def pending_escrow(creator_id: int) -> int:
    """Escrow balance (rollups + tail) of the creator's shows not yet ended or canceled."""
    return int(db.session.execute(text(_PENDING_ESCROW), {"c": creator_id, "w": watermark()}).scalar_one())


# Most recent first, bounded: shows / calls still running (no end: infinity) and then
# by end time, read in that order from ix_*_creator_id_recent (migration 0010) and
# stopping at the range's start — the history before it is never read.
_RECENT = "coalesce({t}.ended_at, 'infinity'::timestamptz)"

_STREAM_REVENUE = """
        WITH s AS MATERIALIZED (
            SELECT id, title, status, {recent} AS until FROM streams
             WHERE creator_id = :c AND {recent} >= :ts AND started_at IS NOT NULL
             ORDER BY {recent} DESC, id DESC LIMIT :limit),
        m AS (
            SELECT ref_id, transfer_kind, amount FROM rollup_daily_ref
             WHERE account_id = :earn AND ref_type = 'stream' AND ref_id IN (SELECT id FROM s) AND day >= :d
            UNION ALL
            SELECT ref_id, transfer_kind, amount FROM {facts} f
             WHERE account_id = :earn AND id > :w AND id > {wm} AND created_at >= :ts AND ref_type = 'stream')
        SELECT s.id, s.title, s.status,
               coalesce(sum(m.amount) FILTER (WHERE m.transfer_kind = '{settle}'), 0) AS tickets,
               coalesce(sum(m.amount) FILTER (WHERE m.transfer_kind = '{tip}'), 0) AS tips
          FROM s LEFT JOIN m ON m.ref_id = s.id
         GROUP BY s.id, s.title, s.status, s.until
         ORDER BY s.until DESC, s.id DESC""".format(recent=_RECENT.format(t="streams"), wm=_WM, facts=FACTS,
                                                    settle=TransferKind.TICKET_SETTLEMENT, tip=TransferKind.TIP)


def stream_revenue_rows(creator_id: int, earnings_id: int, start: date, limit: int) -> list:
    """(id, title, status, tickets, tips) of the creator's most recent shows that ran
    since `start`, at most `limit` (see `creator.stream_revenue`)."""
    return db.session.execute(text(_STREAM_REVENUE), {"c": creator_id, "ts": midnight(start), "d": start,
                                                      "earn": earnings_id, "limit": limit, "w": watermark()}).all()


# A call's money on the creator's earnings: its blocks' shares, less the refunded ones.
_CALL_REVENUE = """
        WITH tail AS MATERIALIZED (
            SELECT ref_id, transfer_kind, amount FROM {facts} f
             WHERE account_id = :earn AND id > :w AND id > {wm} AND created_at >= :ts
               AND ref_type = 'call' AND transfer_kind IN ('{block}', '{refund}'))
        SELECT c.id, u.display_name AS fan_name, c.accepted_at, x.blocks, x.refunded, x.total
          FROM calls c
          JOIN users u ON u.id = c.fan_id
          CROSS JOIN LATERAL (
              SELECT coalesce(sum(n) FILTER (WHERE kind = '{block}'), 0) AS blocks,
                     coalesce(sum(n) FILTER (WHERE kind = '{refund}'), 0) AS refunded,
                     coalesce(sum(amount), 0) AS total FROM (
                  SELECT transfer_kind AS kind, entries AS n, amount FROM rollup_daily_ref
                   WHERE account_id = :earn AND ref_type = 'call' AND ref_id = c.id AND day >= :d
                     AND transfer_kind IN ('{block}', '{refund}')
                  UNION ALL
                  SELECT transfer_kind, 1, amount FROM tail WHERE tail.ref_id = c.id) y) x
         WHERE c.creator_id = :c AND {recent} >= :ts AND c.accepted_at IS NOT NULL AND c.blocks_charged > 0
           AND (x.blocks > 0 OR x.refunded > 0)
         ORDER BY {recent} DESC, c.id DESC LIMIT :limit""".format(recent=_RECENT.format(t="c"), wm=_WM, facts=FACTS,
                                                                  block=TransferKind.CALL_BLOCK,
                                                                  refund=TransferKind.CALL_REFUND)


def call_revenue_rows(creator_id: int, earnings_id: int, start: date, limit: int) -> list:
    """(id, fan_name, accepted_at, blocks, refunded, total) of the creator's most recent
    calls with blocks charged or refunded since `start`, at most `limit` (see
    `creator.call_revenue`)."""
    return db.session.execute(text(_CALL_REVENUE), {"c": creator_id, "ts": midnight(start), "d": start,
                                                    "earn": earnings_id, "limit": limit, "w": watermark()}).all()


# ---- a fan's spending ------------------------------------------------------

_MONTH_KINDS = f"""
        SELECT date_trunc('month', day)::date AS month, kind, sum(amount) AS amount FROM (
            SELECT day, transfer_kind AS kind, amount FROM rollup_daily WHERE account_id = ANY(:a) AND day >= :d
            UNION ALL
            SELECT (e.created_at AT TIME ZONE 'UTC')::date, t.kind, e.amount
              FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
             WHERE e.account_id = ANY(:a) AND e.id > :w AND e.id > {_WM} AND e.created_at >= :ts) x
        GROUP BY 1, 2"""
_MONTH_PAIRS = f"""
        SELECT date_trunc('month', day)::date AS month, counterparty_id, sum(amount) AS amount FROM (
            SELECT day, counterparty_id, amount FROM rollup_daily_pair WHERE account_id = ANY(:a) AND day >= :d
            UNION ALL
            SELECT day, counterparty_id, amount FROM {FACTS} f
             WHERE account_id = ANY(:a) AND id > :w AND id > {_WM} AND created_at >= :ts
               AND counterparty_id IS NOT NULL) x
        GROUP BY 1, 2"""


def by_month(accounts: list[int], first: date) -> tuple[list, list]:
    """The accounts' sums per calendar month (UTC) since `first`: (month, kind,
    amount) rows and (month, counterparty_id, amount) rows."""
    params = {"a": list(accounts), "d": first, "ts": midnight(first), "w": watermark()}
    kind_rows = db.session.execute(text(_MONTH_KINDS), params).all()
    pair_rows = db.session.execute(text(_MONTH_PAIRS), params).all()
    return kind_rows, pair_rows


# Each account's newest `limit` entries, read backwards through its (account_id, id)
# index, merged: the newest `limit` transfers of all the accounts are among them.
_SPENDING_LINES = f"""
        SELECT x.id, x.created_at, x.transfer_kind, x.amount, x.transfer_id, x.counterparty_id, t.metadata
          FROM unnest(CAST(:a AS bigint[])) AS acc(id)
          CROSS JOIN LATERAL (
              SELECT f.id, f.created_at, f.transfer_kind, f.amount, f.transfer_id, f.counterparty_id FROM {FACTS} f
               WHERE f.account_id = acc.id AND f.created_at >= :ts AND f.transfer_kind = ANY(:kinds)
               ORDER BY f.id DESC LIMIT :limit) x
          JOIN ledger_transfers t ON t.id = x.transfer_id
         ORDER BY x.id DESC"""


def latest_entries(accounts: list[int], start: date, kinds: list[str], limit: int) -> list:
    """The newest entries of `kinds` since `start` of each of the accounts (at most
    `limit` each), newest first, with their transfer's id and metadata and the
    counterparty. Of one user's accounts (a transfer's entries on them are
    consecutive: see `by_transfer`), they hold every entry of the newest `limit`
    transfers."""
    if not accounts:
        return []
    return db.session.execute(text(_SPENDING_LINES), {"a": list(accounts), "ts": midnight(start),
                                                      "kinds": kinds, "limit": limit}).all()


def by_transfer(rows) -> Iterator[tuple]:
    """Entries of one user's accounts in id order (either way), one (first entry,
    summed amount) per transfer: a refund that repaid the fan's debt and credited
    their wallet is one payment. A transfer's entries on one user's accounts are
    consecutive: the ledger holds those accounts' rows locked while it posts them
    (`ledger.lock_holder`, `ledger_post`), so no other entry of theirs comes between."""
    for _, group in groupby(rows, key=lambda r: r.transfer_id):
        group = list(group)
        yield group[0], sum(int(r.amount) for r in group)


# ---- platform --------------------------------------------------------------

_HELD_KINDS = ("wallet", "escrow", "debt")
_HELD = f"""
        SELECT account_kind, sum(amount) AS amount FROM (
            SELECT account_kind, amount FROM rollup_kind_daily WHERE account_kind = ANY(:kinds)
            UNION ALL
            SELECT a.kind, e.amount FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
             WHERE e.id > :w AND e.id > {_WM} AND a.kind = ANY(:kinds)) x
        GROUP BY account_kind"""


def held_now() -> dict[str, int]:
    """Tokens held now in all wallets and in all escrow accounts, and the sum of all
    debt accounts (<= 0: what fans owe), by account kind."""
    rows = db.session.execute(text(_HELD), {"w": watermark(), "kinds": list(_HELD_KINDS)})
    return {r.account_kind: int(r.amount) for r in rows}


# ---- CSV exports -----------------------------------------------------------

_FIRST_ENTRY_ID = f"""
        SELECT least(coalesce((SELECT min(min_entry_id) FROM rollup_daily WHERE account_id = ANY(:a) AND day >= :d),
                              {_WM} + 1), {_WM} + 1)"""


def first_entry_id(accounts: list[int], start: date) -> int:
    """No entry of the accounts dated `start` or later has a smaller id than this."""
    return int(db.session.execute(text(_FIRST_ENTRY_ID), {"a": list(accounts), "d": start}).scalar_one())


# An earning entry with its transfer's platform fee: gross = share + fee (a refund's
# three are negative), and the fan it came from (none for a show's settlement).
EARNINGS_EXPORT = f"""
        SELECT f.created_at, f.transfer_kind AS kind, t.idempotency_key, f.amount, f.amount + x.fee AS gross, x.fee,
               u.display_name AS fan
          FROM {FACTS} f
          JOIN ledger_transfers t ON t.id = f.transfer_id
          CROSS JOIN LATERAL (
              SELECT coalesce(sum(e2.amount), 0) AS fee FROM ledger_entries e2
               WHERE e2.transfer_id = f.transfer_id AND e2.account_id = :fees) x
          LEFT JOIN users u ON u.id = f.counterparty_id
         WHERE f.account_id = :a AND f.id >= :lo AND f.created_at >= :ts AND f.transfer_kind = ANY(:kinds)
         ORDER BY f.id"""

SPENDING_EXPORT = f"""
        SELECT f.created_at, f.transfer_kind, f.amount, f.transfer_id, t.metadata, u.display_name AS creator
          FROM {FACTS} f
          JOIN ledger_transfers t ON t.id = f.transfer_id
          LEFT JOIN users u ON u.id = f.counterparty_id
         WHERE f.account_id = ANY(:a) AND f.id >= :lo AND f.created_at >= :ts AND f.transfer_kind = ANY(:kinds)
         ORDER BY f.id"""


def stream_rows(sql: str, params: dict) -> Iterator:
    """Rows of `sql` through a server-side cursor on a connection of its own, so an
    export of a million rows holds a few hundred at a time."""
    with db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=2000).execute(text(sql), params)
        yield from result
        conn.rollback()
