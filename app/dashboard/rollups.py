"""Daily rollups of the ledger entries, maintained incrementally by the worker.

Design note
-----------
Sums of `ledger_entries`, keyed by the entry's UTC day (``created_at AT TIME
ZONE 'UTC'``) and its transfer's kind where it says so:

* ``rollup_daily``      (account, day, transfer kind) → amount, entries, smallest entry id
* ``rollup_total``      (account, transfer kind) → amount, entries, all time (the "all" range)
* ``rollup_daily_pair`` (account, day, counterparty, transfer kind) → amount
  (a creator's fans on their earnings account, a fan's creators on their wallet)
* ``rollup_pair_total`` (account, counterparty) → amount, all time; ranked by an
  index, so the top fans of all time are its first rows
* ``rollup_pair_window`` (earnings account, span, counterparty) → amount over the
  days [D - span + 1, D], span 1 / 7 / 30 and D = ``rollup_state.window_day``: the
  top fans of today / 7 days / 30 days are the first rows of its ranking index,
  however many fans paid in the range. No zero rows.
* ``rollup_daily_ref``  (earnings account, stream or call, day, transfer kind) →
  amount, entries: per-stream revenue (settlement, tips during it) and per-call
  revenue (its blocks) read a row or two per stream / call.
* ``rollup_kind_daily`` (day, account kind, transfer kind) → amount, entries: platform-wide

The counterparty and the stream / call of an entry come from
`app.dashboard.facts.FACTS` (the view ``dashboard_entry_facts`` of migration
0010, with debt accounts and call refunds attributed too).

**Watermark.** ``rollup_state.last_entry_id`` = W: every entry with id <= W
is counted in the rollups and none above it is; the dashboards add the
entries above W themselves (the "tail"), so their figures are exact whether
or not the worker has run. Entry ids come from a sequence but transactions
commit out of order: entry 100 may become visible after entry 101. So a run
only advances W to a bound S that no transaction can still add entries under:
it reads S from the sequence, then waits until every transaction that could
have drawn an id <= S has ended: every transaction of this database that,
just after S was read, held an xid (wrote something) or was running a
statement (pg_stat_activity, matched on pid and transaction start; runs
queued on the lock below excepted). It needs pg_stat_activity to show the
ledger writers' sessions: the same database role, or pg_read_all_stats.
If that takes longer than `wait_seconds` (a long transaction), the run does
nothing and the next one tries again: figures stay exact, the tail is just
longer meanwhile.

**Moving windows.** ``rollup_pair_window`` holds, for its day D, the entries
under W dated in each window. Every run first moves D to today (the app's
clock, UTC): it adds the rolled days entering each window and subtracts those
leaving it (from ``rollup_daily_pair``), in the transaction that sets D, so
after midnight the windows are current again within a run. Readers use the
windows only when D is their today; otherwise (the minute after midnight, or
before the first run) they sum ``rollup_daily_pair`` as before: slower, same
figures.

**Catching up on read.** The worker's run every few seconds keeps the tail
short. When it falls behind (the worker stopped, or a burst of tips between
runs), a dashboard about to read more than `LIVE_LIMIT` of an account's
entries live rolls them up first (`catch_up`): the one request that finds the
backlog pays for folding it once, instead of every request reading it again.
It takes the lock without waiting (a run already holding it is doing that very
work), waits at most `CATCH_UP_WAIT` seconds for open writers, rolls at most
`CATCH_UP_MAX` entries, and after a deferred attempt leaves it to the worker
for `CATCH_UP_BACKOFF` seconds.

Runs are serialised by a session-level advisory lock and each chunk moves W
in the same transaction as its sums, so two overlapping runs (two cron
schedulers, a CLI rebuild during a cron run) never count an entry twice.
"""
from __future__ import annotations

import logging
import time
from datetime import date, timezone

from sqlalchemy import text

from app import clock
from app.dashboard.facts import FACTS
from app.extensions import db

log = logging.getLogger(__name__)

# pg_advisory_lock key: "dashroll" as 8 ASCII bytes, fits a bigint.
LOCK_KEY = int.from_bytes(b"dashroll", "big") & 0x7FFF_FFFF_FFFF_FFFF
CHUNK = 250_000  # entries per transaction when catching up
LIVE_LIMIT = 500        # entries of an account above W a dashboard reads live (~30 µs each); more: roll up
CATCH_UP_WAIT = 0.5     # seconds a catch-up waits for open writers (the worker's run waits 5)
CATCH_UP_BACKOFF = 10.0  # seconds without catch-ups in this process after a deferred one
CATCH_UP_MAX = 500_000  # entries a catch-up rolls at most (one transaction); the rest is the worker's
_backoff_until = 0.0

# One chunk of entries (id in (lo, hi]) into every rollup. The windows take the
# entries dated inside them as of the window day D the run has just set.
_APPLY = """
WITH b AS MATERIALIZED (
    SELECT id, account_id, account_kind, transfer_kind, day, counterparty_id, ref_type, ref_id, amount
      FROM {facts} f WHERE id > :lo AND id <= :hi),
d AS (
    INSERT INTO rollup_daily AS r (account_id, day, transfer_kind, amount, entries, min_entry_id)
    SELECT account_id, day, transfer_kind, sum(amount), count(*), min(id) FROM b GROUP BY 1, 2, 3
    ON CONFLICT (account_id, day, transfer_kind) DO UPDATE
       SET amount = r.amount + excluded.amount, entries = r.entries + excluded.entries,
           min_entry_id = least(r.min_entry_id, excluded.min_entry_id)
    RETURNING 1),
tot AS (
    INSERT INTO rollup_total AS r (account_id, transfer_kind, amount, entries)
    SELECT account_id, transfer_kind, sum(amount), count(*) FROM b GROUP BY 1, 2
    ON CONFLICT (account_id, transfer_kind) DO UPDATE
       SET amount = r.amount + excluded.amount, entries = r.entries + excluded.entries
    RETURNING 1),
p AS (
    INSERT INTO rollup_daily_pair AS r (account_id, day, counterparty_id, transfer_kind, amount)
    SELECT account_id, day, counterparty_id, transfer_kind, sum(amount) FROM b
     WHERE counterparty_id IS NOT NULL GROUP BY 1, 2, 3, 4
    ON CONFLICT (account_id, day, counterparty_id, transfer_kind) DO UPDATE SET amount = r.amount + excluded.amount
    RETURNING 1),
t AS (
    INSERT INTO rollup_pair_total AS r (account_id, counterparty_id, amount)
    SELECT account_id, counterparty_id, sum(amount) FROM b WHERE counterparty_id IS NOT NULL GROUP BY 1, 2
    ON CONFLICT (account_id, counterparty_id) DO UPDATE SET amount = r.amount + excluded.amount
    RETURNING 1),
win AS (
    INSERT INTO rollup_pair_window AS r (account_id, span, counterparty_id, amount)
    SELECT b.account_id, s.span, b.counterparty_id, sum(b.amount)
      FROM b JOIN (SELECT window_day AS wd FROM rollup_state WHERE id = 1) st ON true
      JOIN (VALUES (1), (7), (30)) AS s(span) ON b.day BETWEEN st.wd - s.span + 1 AND st.wd
     WHERE b.account_kind = 'earnings' AND b.counterparty_id IS NOT NULL
     GROUP BY 1, 2, 3
    ON CONFLICT (account_id, span, counterparty_id) DO UPDATE SET amount = r.amount + excluded.amount
    RETURNING r.amount),
ref AS (
    INSERT INTO rollup_daily_ref AS r (account_id, ref_type, ref_id, day, transfer_kind, amount, entries)
    SELECT account_id, ref_type, ref_id, day, transfer_kind, sum(amount), count(*) FROM b
     WHERE account_kind = 'earnings' AND ref_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (account_id, ref_type, ref_id, day, transfer_kind) DO UPDATE
       SET amount = r.amount + excluded.amount, entries = r.entries + excluded.entries
    RETURNING 1),
k AS (
    INSERT INTO rollup_kind_daily AS r (day, account_kind, transfer_kind, amount, entries)
    SELECT day, account_kind, transfer_kind, sum(amount), count(*) FROM b GROUP BY 1, 2, 3
    ON CONFLICT (day, account_kind, transfer_kind) DO UPDATE
       SET amount = r.amount + excluded.amount, entries = r.entries + excluded.entries
    RETURNING 1)
SELECT (SELECT count(*) FROM b) AS rolled, (SELECT count(*) FROM win WHERE amount = 0) AS zeros
""".format(facts=FACTS)

# The windows from scratch for the day :today (after a rebuild, or the first run).
_BUILD_WINDOWS = """
INSERT INTO rollup_pair_window (account_id, span, counterparty_id, amount)
SELECT p.account_id, s.span, p.counterparty_id, sum(p.amount)
  FROM (VALUES (1), (7), (30)) AS s(span)
  JOIN rollup_daily_pair p ON p.day BETWEEN CAST(:today AS date) - s.span + 1 AND CAST(:today AS date)
  JOIN ledger_accounts a ON a.id = p.account_id AND a.kind = 'earnings'
 GROUP BY 1, 2, 3
HAVING sum(p.amount) <> 0
"""

# Move the windows from day :old to day :new: add the rolled days now inside a window
# and not before, subtract those inside before and not now. Only days in the two
# ranges below can be one of those (for a one-day move: one leaving and one entering
# day per span), read through the index on day.
_SHIFT_WINDOWS = """
INSERT INTO rollup_pair_window AS r (account_id, span, counterparty_id, amount)
SELECT p.account_id, s.span, p.counterparty_id,
       sum(p.amount * ((p.day BETWEEN CAST(:new AS date) - s.span + 1 AND CAST(:new AS date))::int
                       - (p.day BETWEEN CAST(:old AS date) - s.span + 1 AND CAST(:old AS date))::int))
  FROM (VALUES (1), (7), (30)) AS s(span)
  JOIN rollup_daily_pair p
    ON (p.day >= least(CAST(:old AS date), CAST(:new AS date)) - s.span + 1
        AND p.day < greatest(CAST(:old AS date), CAST(:new AS date)) - s.span + 1)
    OR (p.day > least(CAST(:old AS date), CAST(:new AS date))
        AND p.day <= greatest(CAST(:old AS date), CAST(:new AS date)))
  JOIN ledger_accounts a ON a.id = p.account_id AND a.kind = 'earnings'
 GROUP BY 1, 2, 3
ON CONFLICT (account_id, span, counterparty_id) DO UPDATE SET amount = r.amount + excluded.amount
"""

TABLES = ("rollup_daily", "rollup_total", "rollup_daily_pair", "rollup_pair_total", "rollup_pair_window",
          "rollup_daily_ref", "rollup_kind_daily")
WINDOW_SPANS = {"today": 1, "7d": 7, "30d": 30}  # range → rollup_pair_window.span


def today() -> date:
    """Today's UTC date on the app's clock (`app.clock.now`, injectable in tests):
    the day the windows are moved to, and the one the dashboards read."""
    return clock.now().astimezone(timezone.utc).date()


def _shift_windows(conn, day: date) -> None:
    """Make ``rollup_pair_window`` end on `day` (no-op if it does). Run by the caller
    holding the rollup lock, inside the transaction that then commits it."""
    current = conn.execute(text("SELECT window_day FROM rollup_state WHERE id = 1 FOR UPDATE")).scalar_one()
    if current == day:
        return
    conn.execute(text("SET LOCAL jit = off"))  # as for _APPLY in `run`
    if current is None:
        conn.execute(text("DELETE FROM rollup_pair_window"))
        conn.execute(text(_BUILD_WINDOWS), {"today": day})
    else:
        conn.execute(text(_SHIFT_WINDOWS), {"old": current, "new": day})
        # Fans whose money all left a window: a zero row would rank nothing and a
        # rebuild would not have it.
        conn.execute(text("DELETE FROM rollup_pair_window WHERE amount = 0"))
    conn.execute(text("UPDATE rollup_state SET window_day = :d WHERE id = 1"), {"d": day})


def watermark() -> int:
    """The current W (entries with id <= W are in the rollups)."""
    return int(db.session.execute(text("SELECT last_entry_id FROM rollup_state WHERE id = 1")).scalar_one())


def _safe_bound(conn, wait_seconds: float) -> int | None:
    """The largest entry id S such that every entry with id <= S that will ever
    exist is visible now; None if the writers that might still add some did not
    finish within `wait_seconds`. See the module docstring."""
    s = conn.execute(text(
        "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ledger_entries_id_seq")).scalar_one()
    conn.commit()
    # Strictly after the sequence was read: every transaction of this database that
    # could hold an entry id <= s is one of these (it has an xid, or is running the
    # statement that is getting one).
    pids, starts = conn.execute(text("""
        SELECT coalesce(array_agg(pid), '{}'), coalesce(array_agg(xact_start), '{}')
          FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
           AND (backend_xid IS NOT NULL OR state = 'active')
           AND wait_event IS DISTINCT FROM 'advisory'""")).one()
    conn.commit()
    deadline = time.monotonic() + wait_seconds
    while True:
        done = not pids or not conn.execute(text("""
            SELECT EXISTS (SELECT 1 FROM pg_stat_activity a
                             JOIN unnest(CAST(:pids AS int[]), CAST(:starts AS timestamptz[])) AS w(pid, xs)
                               ON a.pid = w.pid AND a.xact_start = w.xs)"""),
            {"pids": list(pids), "starts": list(starts)}).scalar_one()
        conn.commit()
        if done:
            return int(s)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def run(*, chunk: int = CHUNK, wait_seconds: float = 5.0, block: bool = True,
        max_chunks: int | None = None) -> dict:
    """Move the moving windows to today (see the module docstring), then roll every
    entry above the watermark (up to the safe bound) into the rollups.

    Safe to run concurrently with itself and with ledger writes; commits one
    transaction per `chunk` entries. Returns {"rolled": n, "watermark": W,
    "deferred": bool, "busy": bool} ("deferred": a long-running writer kept the
    bound back; "busy": `block` was False and another run held the lock, so this
    one did nothing). With `max_chunks`, stops after that many chunks (the next
    run goes on from there).
    """
    rolled = 0
    day = today()
    with db.engine.connect() as conn:
        if block:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        elif not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar_one():
            w = conn.execute(text("SELECT last_entry_id FROM rollup_state WHERE id = 1")).scalar_one()
            conn.commit()
            return {"rolled": 0, "watermark": int(w), "deferred": False, "busy": True}
        conn.commit()
        try:
            # Windows first, and on their own: after midnight they move even if no entry is new.
            _shift_windows(conn, day)
            conn.commit()
            bound = _safe_bound(conn, wait_seconds)
            chunks = 0
            while max_chunks is None or chunks < max_chunks:
                chunks += 1
                w = conn.execute(text("SELECT last_entry_id FROM rollup_state WHERE id = 1 FOR UPDATE")).scalar_one()
                if bound is None or w >= bound:
                    conn.rollback()
                    break
                hi = min(bound, w + chunk)
                # The facts view's per-entry lookups price a chunk far above jit_above_cost:
                # compiling it took 1.5 s of the 1.7 s that rolling 13,000 entries took.
                conn.execute(text("SET LOCAL jit = off"))
                applied = conn.execute(text(_APPLY), {"lo": w, "hi": hi}).one()
                rolled += applied.rolled
                if applied.zeros:  # a fan's money cancelled out in a window (their call blocks refunded)
                    conn.execute(text("DELETE FROM rollup_pair_window WHERE amount = 0"))
                conn.execute(text("UPDATE rollup_state SET last_entry_id = :hi, updated_at = now() WHERE id = 1"),
                             {"hi": hi})
                conn.commit()
            w = conn.execute(text("SELECT last_entry_id FROM rollup_state WHERE id = 1")).scalar_one()
            conn.commit()
        finally:
            conn.rollback()  # a failed statement leaves the transaction aborted: unlock outside it
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.commit()
    if rolled:
        log.info("rollups: %d entries rolled up, watermark %d", rolled, w)
    return {"rolled": rolled, "watermark": int(w), "deferred": bound is None, "busy": False}


_LIVE_ENTRIES = """
    SELECT (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ledger_entries_id_seq)
           - st.last_entry_id AS behind,
           CASE WHEN (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ledger_entries_id_seq)
                     - st.last_entry_id > :limit
                THEN (SELECT count(*) FROM (SELECT 1 FROM ledger_entries e
                                             WHERE e.account_id = ANY(:a) AND e.id > st.last_entry_id
                                             LIMIT :limit + 1) x)
                ELSE 0 END AS live
      FROM rollup_state st WHERE st.id = 1"""


def catch_up(account_ids, limit: int | None = None) -> dict | None:
    """Roll up now if more than `limit` (LIVE_LIMIT) entries of these accounts are above the
    watermark (see "Catching up on read" in the module docstring); None when there
    was nothing to do or it is left to the worker. Reads the entries only when more
    than `limit` of all accounts' are above W: with the worker keeping up, one cheap
    statement. Never raises for a busy lock or open writers: the figures read after
    it are exact either way, only slower. Commits the session before it rolls up."""
    global _backoff_until
    limit = LIVE_LIMIT if limit is None else limit
    ids = [i for i in account_ids if i is not None]
    if not ids or time.monotonic() < _backoff_until:
        return None
    live = db.session.execute(text(_LIVE_ENTRIES), {"a": ids, "limit": limit}).one().live
    if live <= limit:
        return None
    # End the caller's (read-only) transaction first: its connection goes back to the
    # pool while the run takes one, so requests catching up at once cannot starve it.
    db.session.commit()
    # Bounded: after a long outage a page should not fold millions of entries.
    result = run(chunk=CATCH_UP_MAX, wait_seconds=CATCH_UP_WAIT, block=False, max_chunks=1)
    if result["deferred"]:
        _backoff_until = time.monotonic() + CATCH_UP_BACKOFF
    return result


def rebuild(*, chunk: int = CHUNK, wait_seconds: float = 30.0) -> dict:
    """Throw the rollups away and recount them from the entries (repair).

    The reset is one short transaction (W back to 0 with the tables emptied),
    so the dashboards stay exact throughout — they read the entries directly
    until the catch-up below has moved W forward again."""
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        conn.commit()
        try:
            # DELETE, not TRUNCATE: readers keep their snapshot instead of queueing behind
            # an exclusive lock (a dashboard open in a transaction would stall a TRUNCATE).
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("UPDATE rollup_state SET last_entry_id = 0, window_day = NULL, updated_at = now() "
                              "WHERE id = 1"))
            conn.commit()
        finally:
            conn.rollback()  # a failed statement leaves the transaction aborted: unlock outside it
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.commit()
    return run(chunk=chunk, wait_seconds=wait_seconds)
