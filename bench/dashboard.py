"""Creator dashboard response time with 1,000 vs 1,000,000 earning entries, same run.

What is measured is what a creator waits for: the full ``GET /dashboard?range=…``
served by the real app through Flask's test client with the creator's logged-in
session cookie, for a "small" creator (1,000 entries on their earnings account)
and a "big" one (1,000,000), alternating small/big each round; p50/p95 per
creator and the ratio p95(big)/p95(small), for every range (today, 7d, 30d,
all), in two scenarios:

* **A, rolled up**: the rollups are caught up, as the worker keeps them.
* **B, a backlog**: then ``--tail`` (100,000) more tips reach the big creator and
  nothing rolls them up (the worker stopped, or fell behind a burst). First,
  for reference, a few requests with the dashboard's catch-up turned off (every
  request reads the backlog live); then the big creator's first page, which
  finds the backlog and rolls it up (`rollups.catch_up`), timed on its own; then
  every range as in A.

Target: every ratio <= 1.5 in both scenarios. Hard checks, before and after each
scenario: `ledger.verify()` is clean and every range's earnings of both creators
equal plain SQL over the entries (B's first check reads the backlog live). The
last lines are a table of every ratio with PASS/FAIL. Exit status: 1 if a hard
check failed, 2 if a ratio missed the target, else 0.

A breakdown then times, for 30d and all in scenario A, every data-fetching call
that page makes (alone, small and big alternating) and the rendering of its
templates, to show where the time goes (each call alone also pays a pool
checkout and a BEGIN that a request pays once). `--explain` prints EXPLAIN
(ANALYZE, BUFFERS) of the big creator's queries; `--export` also times the CSV
export of the big creator (see below).

History (bulk SQL, one transaction, written exactly as the services write it)
-----------------------------------------------------------------------------
Both creators get the same mix over the last SPAN_DAYS days (ending an hour ago),
scaled to their entry count; per 1,000 earning entries:

* 3 streams (2 of 3 private shows, ticket price 10..200, 5..75 tickets from the
  creator's fans; ~3 % of shows canceled and refunded); every show that ran and
  had tickets is settled when it ends (`ticket_settlement` = 1 earning entry).
  The newest stream is live; one more private show is scheduled two days ahead,
  its tickets held in escrow (pending).
* 30 calls of 1..23 blocks of BILLING_BLOCK_SECONDS at 10..60 tokens/min, one
  `call_block` transfer + `block_charged` billing event per block, an `ended` event.
* tips for the rest (5..500 tokens): 45 % during a stream (from its ticket holders
  for a private show; `tips.stream_id` + channel), 10 % during a call (its fan;
  `tips.call_id` + the call's channel), the rest anywhere in the span.

So the big creator has 3,000 streams, 30,000 calls (~360k blocks), ~2,000
settlements and ~640k tips; the small one 3 / 30 / 2 / ~640. Transfers mirror
app/tips (`tip:<id>`, {creatorId, fanId, tipId}, wallet → earnings + fees),
app/streams/tickets (`ticket:<stream>:<fan>` wallet → the show's own escrow
account; `stream:<id>:settle` escrow → earnings + fees split once on the total;
`stream:<id>:refund:<first ticket id>` escrow → wallets) and app/calls
(`call:<id>:block:<k>`, {callId, blockIndex, creatorId}); the split is
`CREATOR_SHARE_PERCENT`, block prices are `billing.block_price`. Each fan is
funded first by demo purchases (`purchase:<id>`, ≤ 100,000 tokens each).
Ids (transfers, entries, tips, tickets, calls, streams, billing events) grow
with time as real ones do. Wallet entries carry `balance_after`. Not written:
the idempotency-key claims of tips and purchases (no dashboard reads them).

The load runs with triggers off (`session_replication_role`) for speed, so the
script then runs `app.ledger.verify()` — balanced transfers, cached balances,
running balances, non-negative wallets, escrow = valid tickets, issued =
purchased — and refuses to go on if anything is off. Rollups are built with
`app.dashboard.rollups.run()` (timed), as the worker would have.

With `--export`, the CSV export of the big creator's entries is consumed fully in
a child process, twice (30 days ≈ 41k rows, all ≈ 1M rows), reporting peak RSS of
each: constant memory means the two peaks are about equal.

    make bench-dashboard            # or: python bench/dashboard.py --big 1000000 --tail 100000 --rounds 300
    python bench/dashboard.py --big 200000 --rounds 60 --call-rounds 20   # a quick look while developing
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402

from _common import _app, fresh_services, libpq_url  # noqa: E402

FANS = 2000          # the big creator's fans; the small one's are the first SMALL_FANS of them
SMALL_FANS = 100
SPAN_DAYS = 730
PAGE_RANGE = "30d"   # the dashboard's default range
RANGES = ("today", "7d", "30d", "all")
TARGET = 1.5         # p95(big) / p95(small), every range, both scenarios
PURCHASE_MAX = 100_000


def connect(url: str, **kw) -> psycopg.Connection:
    """psycopg.connect, retried for up to a minute while the server is out of
    connection slots (other benchmarks on a shared server): one refused connect
    should not throw away a loaded million-entry database."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return psycopg.connect(url, **kw)
        except psycopg.OperationalError as err:
            if "too many clients" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(1)


# ---- history -------------------------------------------------------------------

def _scale(n: int) -> tuple[int, int]:
    """(streams, calls) for a creator with `n` earning entries: 3 and 30 per 1,000."""
    return max(3, round(n * 3 / 1000)), max(3, round(n * 30 / 1000))


GENERATE = [
    # Streams, oldest first: i = 1..streams ran (or were canceled); i = streams is live
    # now; i = streams + 1 is a private show scheduled two days ahead.
    """
    CREATE TEMP TABLE g_streams AS
    SELECT *, CASE WHEN status = 'canceled' THEN ended_at ELSE least(planned, %(t_end)s) END AS sales_end
      FROM (SELECT c.creator_id, c.nf, i, private, price, r,
                   CASE WHEN private THEN least(c.nf, 5 + floor(random() * 71)::int) ELSE 0 END AS k,
                   planned, planned - interval '3 days' AS created_at,
                   CASE WHEN private THEN planned END AS starts_at,
                   CASE WHEN status IN ('live', 'ended') THEN planned END AS started_at,
                   CASE status WHEN 'ended' THEN least(planned + interval '1 hour' + random() * interval '2 hours',
                                                       %(t_end)s)
                               WHEN 'canceled' THEN planned - interval '1 hour' END AS ended_at,
                   status
              FROM (SELECT c.creator_id, i,
                           (i %% 3 <> 0 OR i = c.streams + 1) AS private,
                           10 + floor(random() * 191)::bigint AS price,
                           floor(random() * c.nf)::int AS r,
                           CASE WHEN i = c.streams + 1 THEN now() + interval '2 days'
                                WHEN i = c.streams THEN %(t_end)s - interval '30 minutes'
                                ELSE %(t0)s + (i - 1 + 0.8 * random()) * (%(t_end)s - %(t0)s) / c.streams END AS planned,
                           CASE WHEN i = c.streams + 1 THEN 'scheduled' WHEN i = c.streams THEN 'live'
                                WHEN i %% 3 <> 0 AND random() < 0.03 THEN 'canceled' ELSE 'ended' END AS status
                      FROM g_creators c CROSS JOIN LATERAL generate_series(1, c.streams + 1) AS i) s
              JOIN g_creators c USING (creator_id)) x
    """,
    # Ids in creation order, as the app assigns them; one escrow account per private show.
    """
    CREATE TEMP TABLE g_stream AS
    SELECT %(stream_base)s + row_number() OVER (ORDER BY created_at, creator_id, i) AS id, *,
           CASE WHEN private THEN nextval('ledger_accounts_id_seq') END AS escrow
      FROM g_streams
    """,
    """
    CREATE TEMP TABLE g_ticket0 AS
    SELECT s.id AS stream_id, s.creator_id, s.title, s.price, s.status AS stream_status, s.escrow, s.ended_at,
           f.user_id AS fan_id, f.wallet,
           s.created_at + random() * (s.sales_end - s.created_at) AS at
      FROM (SELECT *, 'Show #' || i AS title FROM g_stream) s
      CROSS JOIN LATERAL generate_series(0, s.k - 1) AS j
      JOIN g_fans f ON f.creator_id = s.creator_id AND f.idx = (s.r + j) %% s.nf
    """,
    """
    CREATE TEMP TABLE g_ticket AS
    SELECT %(ticket_base)s + row_number() OVER (ORDER BY at, stream_id, fan_id) AS id, * FROM g_ticket0
    """,
    # A canceled show is refunded in one batch (refund_show's batches hold up to 200 tickets).
    """
    CREATE TEMP TABLE g_refund AS
    SELECT stream_id, 'stream:' || stream_id || ':refund:' || min(id) AS key, min(escrow) AS escrow,
           sum(price) AS total, min(title) AS title, min(ended_at) + interval '1 minute' AS at
      FROM g_ticket WHERE stream_status = 'canceled' GROUP BY stream_id
    """,
    # Calls: `calls` per creator, evenly spread (never overlapping), 1..23 blocks each.
    """
    CREATE TEMP TABLE g_call0 AS
    SELECT creator_id, i, fan_idx, rate, blocks, accepted_at,
           (blocks - 1) * %(block_ms)s + 1000 + floor(u * (%(block_ms)s - 2000))::bigint AS active_ms
      FROM (SELECT c.creator_id, i, floor(random() * c.nf)::int AS fan_idx, 10 + floor(random() * 51)::bigint AS rate,
                   1 + floor(random() * 23)::int AS blocks, random() AS u,
                   %(t0)s + (i - 1 + 0.5 * random()) * (%(t_end)s - %(t0)s) / c.calls AS accepted_at
              FROM g_creators c CROSS JOIN LATERAL generate_series(1, c.calls) AS i) x
    """,
    """
    CREATE TEMP TABLE g_call AS
    SELECT %(call_base)s + row_number() OVER (ORDER BY c.accepted_at, c.creator_id, c.i) AS id,
           row_number() OVER (PARTITION BY c.creator_id ORDER BY c.i) AS n,
           c.*, f.user_id AS fan_id, f.wallet, c.accepted_at + c.active_ms * interval '1 millisecond' AS ended_at
      FROM g_call0 c JOIN g_fans f ON f.creator_id = c.creator_id AND f.idx = c.fan_idx
    """,
    # Block k is charged at its start; price = billing.block_price(k, rate, block_seconds).
    """
    CREATE TEMP TABLE g_block AS
    SELECT c.id AS call_id, c.creator_id, c.wallet, k,
           ((k + 1) * c.rate * %(block_s)s + 59) / 60 - (k * c.rate * %(block_s)s + 59) / 60 AS price,
           c.accepted_at + k * %(block_s)s * interval '1 second' AS at
      FROM g_call c CROSS JOIN LATERAL generate_series(0, c.blocks - 1) AS k
    """,
    # Tips: the rest of each creator's earning entries (n - blocks - settlements).
    """
    UPDATE g_creators c SET
        ran = (SELECT count(*) FROM g_stream s WHERE s.creator_id = c.creator_id AND s.started_at IS NOT NULL),
        tips = c.n - (SELECT count(*) FROM g_block b WHERE b.creator_id = c.creator_id)
                   - (SELECT count(DISTINCT stream_id) FROM g_ticket t
                       WHERE t.creator_id = c.creator_id AND t.stream_status = 'ended')
    """,
    """
    CREATE TEMP TABLE g_ran AS
    SELECT row_number() OVER (PARTITION BY creator_id ORDER BY id) AS n, * FROM g_stream WHERE started_at IS NOT NULL
    """,
    """
    CREATE TEMP TABLE g_tip0 AS
    SELECT b.creator_id, b.a, b.m, s.id AS stream_id, s.channel AS stream_channel, cl.id AS call_id,
           'c-bench-' || cl.id AS call_channel,
           CASE WHEN s.id IS NOT NULL THEN s.started_at + b.w * (coalesce(s.ended_at, %(t_end)s) - s.started_at)
                WHEN cl.id IS NOT NULL THEN cl.accepted_at + b.w * (cl.ended_at - cl.accepted_at)
                ELSE %(t0)s + b.w * (%(t_end)s - %(t0)s) END AS at,
           CASE WHEN s.private THEN (s.r + floor(b.f * s.k)::int) %% b.nf
                WHEN s.id IS NOT NULL THEN floor(b.f * b.nf)::int
                WHEN cl.id IS NOT NULL THEN cl.fan_idx
                ELSE floor(b.f * b.nf)::int END AS fan_idx
      FROM (SELECT c.creator_id, c.nf, c.ran, c.calls, i, random() AS u, random() AS v, random() AS w,
                   random() AS a, random() AS f, random() AS m
              FROM g_creators c CROSS JOIN LATERAL generate_series(1, c.tips) AS i) b
      LEFT JOIN (SELECT *, 's-bench-' || id AS channel FROM g_ran) s
             ON b.u < 0.45 AND s.creator_id = b.creator_id AND s.n = 1 + floor(b.v * b.ran)
      LEFT JOIN g_call cl ON b.u >= 0.45 AND b.u < 0.55 AND cl.creator_id = b.creator_id
                          AND cl.n = 1 + floor(b.v * b.calls)
    """,
    """
    CREATE TEMP TABLE g_tip AS
    SELECT %(tip_base)s + row_number() OVER (ORDER BY t.at, t.creator_id) AS id, t.creator_id, t.stream_id, t.call_id,
           coalesce(t.stream_channel, CASE WHEN t.call_id IS NOT NULL THEN t.call_channel END) AS channel,
           t.at, f.user_id AS sender_id, f.wallet,
           5 + floor(t.a ^ 3 * 496)::bigint AS amount,
           (ARRAY['', '', '', 'gg', 'love this!', 'hi from Lisbon'])[1 + floor(t.m * 6)::int] AS message
      FROM g_tip0 t JOIN g_fans f ON f.creator_id = t.creator_id AND f.idx = t.fan_idx
    """,
    # Every transfer but the purchases: (key, kind, metadata, at), and its legs.
    """
    CREATE TEMP TABLE g_tx AS
    SELECT 'tip:' || t.id AS key, 'tip' AS kind,
           jsonb_build_object('creatorId', t.creator_id, 'fanId', t.sender_id, 'tipId', t.id) AS metadata, t.at
      FROM g_tip t
    UNION ALL
    SELECT 'ticket:' || stream_id || ':' || fan_id, 'ticket',
           jsonb_build_object('streamId', stream_id, 'ticketId', id, 'creatorId', creator_id, 'streamTitle', title), at
      FROM g_ticket
    UNION ALL
    SELECT DISTINCT ON (stream_id) 'stream:' || stream_id || ':settle', 'ticket_settlement',
           jsonb_build_object('streamId', stream_id, 'streamTitle', title, 'creatorId', creator_id), ended_at
      FROM g_ticket WHERE stream_status = 'ended'
    UNION ALL
    SELECT key, 'ticket_refund', jsonb_build_object('streamId', stream_id, 'streamTitle', title, 'reason', 'creator'),
           at
      FROM g_refund
    UNION ALL
    SELECT 'call:' || call_id || ':block:' || k, 'call_block',
           jsonb_build_object('callId', call_id, 'blockIndex', k, 'creatorId', creator_id), at
      FROM g_block
    """,
    """
    CREATE TEMP TABLE g_leg AS
    SELECT 'tip:' || t.id AS key, l.account, l.amount, l.o
      FROM g_tip t JOIN g_creators c USING (creator_id)
     CROSS JOIN LATERAL (VALUES (t.wallet, -t.amount, 1), (c.earnings, t.amount * %(share)s / 100, 2),
                                (%(fees)s::bigint, t.amount - t.amount * %(share)s / 100, 3)) AS l(account, amount, o)
    UNION ALL
    SELECT 'ticket:' || t.stream_id || ':' || t.fan_id, l.account, l.amount, l.o
      FROM g_ticket t CROSS JOIN LATERAL (VALUES (t.wallet, -t.price, 1), (t.escrow, t.price, 2)) AS l(account, amount, o)
    UNION ALL
    SELECT 'stream:' || s.stream_id || ':settle', l.account, l.amount, l.o
      FROM (SELECT stream_id, creator_id, escrow, sum(price) AS total FROM g_ticket
             WHERE stream_status = 'ended' GROUP BY 1, 2, 3) s JOIN g_creators c USING (creator_id)
     CROSS JOIN LATERAL (VALUES (s.escrow, -s.total, 1), (c.earnings, s.total * %(share)s / 100, 2),
                                (%(fees)s::bigint, s.total - s.total * %(share)s / 100, 3)) AS l(account, amount, o)
    UNION ALL
    SELECT r.key, t.wallet, t.price, 1 + row_number() OVER (PARTITION BY t.stream_id ORDER BY t.id)
      FROM g_ticket t JOIN g_refund r USING (stream_id)
    UNION ALL
    SELECT key, escrow, -total, 1 FROM g_refund
    UNION ALL
    SELECT 'call:' || b.call_id || ':block:' || b.k, l.account, l.amount, l.o
      FROM g_block b JOIN g_creators c USING (creator_id)
     CROSS JOIN LATERAL (VALUES (b.wallet, -b.price, 1), (c.earnings, b.price * %(share)s / 100, 2),
                                (%(fees)s::bigint, b.price - b.price * %(share)s / 100, 3)) AS l(account, amount, o)
    """,
    # Fund every wallet first: what it spends (net of refunds) plus a little left over,
    # in purchases of at most PURCHASE_MAX tokens, a week before the history starts.
    """
    CREATE TEMP TABLE g_purchase AS
    SELECT %(purchase_base)s + row_number() OVER (ORDER BY w.user_id, j) AS id, w.user_id, w.wallet,
           least(%(pmax)s, w.need - j * %(pmax)s) AS amount,
           %(t0)s - interval '7 days' + j * interval '1 minute' AS at
      FROM (SELECT a.user_id, a.id AS wallet, coalesce(-s.net, 0) + 500 AS need
              FROM ledger_accounts a
              LEFT JOIN (SELECT account, sum(amount) AS net FROM g_leg GROUP BY account) s ON s.account = a.id
             WHERE a.kind = 'wallet') w
     CROSS JOIN LATERAL generate_series(0, (w.need - 1) / %(pmax)s) AS j
    """,
    """
    INSERT INTO g_tx SELECT 'purchase:' || id, 'purchase', jsonb_build_object('purchaseId', id, 'provider', 'demo'), at
      FROM g_purchase
    """,
    """
    INSERT INTO g_leg
    SELECT 'purchase:' || p.id, l.account, l.amount, l.o FROM g_purchase p
     CROSS JOIN LATERAL (VALUES (%(sales)s::bigint, -p.amount, 1), (p.wallet, p.amount, 2)) AS l(account, amount, o)
    """,
    # Transfer ids in time order, as commits hand them out.
    """
    CREATE TEMP TABLE g_txo AS
    SELECT key, kind, metadata, at, %(transfer_base)s + row_number() OVER (ORDER BY at, key) AS tid FROM g_tx
    """,
    "CREATE UNIQUE INDEX ON g_txo (key)",
]

WRITE = [
    """
    INSERT INTO ledger_accounts (id, kind, user_id, cached, created_at)
    SELECT escrow, 'escrow', creator_id, false, created_at FROM g_stream WHERE private ORDER BY escrow
    """,
    """
    INSERT INTO ledger_transfers (id, kind, idempotency_key, metadata, created_at)
    SELECT tid, kind, key, metadata, at FROM g_txo ORDER BY tid
    """,
    # Entry ids follow (transfer, leg); a wallet's balance_after is its running sum.
    """
    INSERT INTO ledger_entries (id, transfer_id, account_id, amount, balance_after, created_at)
    SELECT %(entry_base)s + row_number() OVER (ORDER BY x.tid, l.o), x.tid, l.account, l.amount,
           CASE WHEN a.cached THEN sum(l.amount) OVER (PARTITION BY l.account ORDER BY x.tid, l.o) END, x.at
      FROM g_leg l JOIN g_txo x USING (key) JOIN ledger_accounts a ON a.id = l.account
     ORDER BY 1
    """,
    """
    INSERT INTO purchases (id, user_id, amount_tokens, amount_cents, provider, provider_ref, status, transfer_id,
                           created_at, completed_at)
    SELECT p.id, p.user_id, p.amount, p.amount * %(cents)s, 'demo', 'demo-bench-' || p.id, 'completed', x.tid,
           p.at, p.at
      FROM g_purchase p JOIN g_txo x ON x.key = 'purchase:' || p.id ORDER BY p.id
    """,
    """
    INSERT INTO streams (id, creator_id, title, type, ticket_price, status, channel, starts_at, started_at, ended_at,
                         created_at, cancel_reason, escrow_account_id, settlement_transfer_id, refunded_at)
    SELECT s.id, s.creator_id, 'Show #' || s.i, CASE WHEN s.private THEN 'private' ELSE 'public' END,
           CASE WHEN s.private THEN s.price END, s.status, 's-bench-' || s.id, s.starts_at, s.started_at, s.ended_at,
           s.created_at, CASE WHEN s.status = 'canceled' THEN 'creator' END, s.escrow, x.tid,
           CASE WHEN s.status = 'canceled' THEN s.ended_at + interval '1 minute' END
      FROM g_stream s LEFT JOIN g_txo x ON x.key = 'stream:' || s.id || ':settle' ORDER BY s.id
    """,
    """
    INSERT INTO tickets (id, stream_id, fan_id, price, status, transfer_id, refund_transfer_id, created_at, refunded_at)
    SELECT t.id, t.stream_id, t.fan_id, t.price, CASE WHEN r.tid IS NULL THEN 'valid' ELSE 'refunded' END, x.tid,
           r.tid, t.at, r.at
      FROM g_ticket t JOIN g_txo x ON x.key = 'ticket:' || t.stream_id || ':' || t.fan_id
      LEFT JOIN g_refund f USING (stream_id)
      LEFT JOIN g_txo r ON r.key = f.key
     ORDER BY t.id
    """,
    """
    INSERT INTO calls (id, fan_id, creator_id, rate, block_seconds, status, end_reason, channel, requested_at,
                       accepted_at, ended_at, active_ms, blocks_charged, total_charged)
    SELECT c.id, c.fan_id, c.creator_id, c.rate, %(block_s)s, 'ended', 'ended_by_fan', 'c-bench-' || c.id,
           c.accepted_at - interval '15 seconds', c.accepted_at, c.ended_at, c.active_ms, c.blocks,
           (c.blocks * c.rate * %(block_s)s + 59) / 60
      FROM g_call c ORDER BY c.id
    """,
    """
    INSERT INTO billing_events (call_id, type, block_index, amount, creator_share, platform_share, reason, transfer_id,
                                created_at)
    SELECT call_id, type, block_index, amount, cs, ps, reason, tid, at FROM (
        SELECT b.call_id, 'block_charged' AS type, b.k AS block_index, b.price AS amount,
               b.price * %(share)s / 100 AS cs, b.price - b.price * %(share)s / 100 AS ps, NULL AS reason,
               x.tid, b.at, 0 AS o
          FROM g_block b JOIN g_txo x ON x.key = 'call:' || b.call_id || ':block:' || b.k
        UNION ALL
        SELECT id, 'ended', NULL, NULL, NULL, NULL, 'ended_by_fan', NULL, ended_at, 1 FROM g_call) e
     ORDER BY at, call_id, o
    """,
    """
    INSERT INTO tips (id, sender_id, creator_id, amount, creator_share, platform_share, message, stream_id, call_id,
                      channel, transfer_id, created_at)
    SELECT t.id, t.sender_id, t.creator_id, t.amount, t.amount * %(share)s / 100, t.amount - t.amount * %(share)s / 100,
           t.message, t.stream_id, t.call_id, t.channel, x.tid, t.at
      FROM g_tip t JOIN g_txo x ON x.key = 'tip:' || t.id ORDER BY t.id
    """,
    "UPDATE ledger_accounts a SET balance = s.total FROM (SELECT account, sum(amount) AS total FROM g_leg GROUP BY 1) s "
    "WHERE s.account = a.id AND a.cached",
]

SEQUENCES = {"streams_id_seq": "streams", "tickets_id_seq": "tickets", "calls_id_seq": "calls",
             "tips_id_seq": "tips", "billing_events_id_seq": "billing_events", "purchases_id_seq": "purchases",
             "ledger_transfers_id_seq": "ledger_transfers", "ledger_entries_id_seq": "ledger_entries"}


def build(db_url: str, big: int, small: int, share: int, block_s: int) -> dict:
    """Write both creators' histories (see the module docstring); returns ids and counts."""
    with connect(libpq_url(db_url)) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SELECT setseed(0.2024)")
        users = conn.execute("""
            INSERT INTO users (email, password_hash, display_name, role, call_rate_tokens_per_min, calls_enabled)
            SELECT 'u' || i || '@bench.example', 'x', CASE WHEN i <= 2 THEN 'Creator ' ELSE 'Fan ' END || i,
                   CASE WHEN i <= 2 THEN 'creator' ELSE 'fan' END, CASE WHEN i <= 2 THEN 30 END, i <= 2
              FROM generate_series(1, %s) AS i ORDER BY i RETURNING id, role""", (FANS + 2,)).fetchall()
        creators = [u for u, r in users if r == "creator"]
        fans = [u for u, r in users if r == "fan"]
        conn.execute("INSERT INTO ledger_accounts (kind, user_id, cached) SELECT 'wallet', u, true "
                     "FROM unnest(%s::bigint[]) u", (fans + creators,))
        conn.execute("INSERT INTO ledger_accounts (kind, user_id, cached) SELECT 'earnings', u, false "
                     "FROM unnest(%s::bigint[]) u", (creators,))
        acc = {(r[0], r[1]): r[2] for r in conn.execute(
            "SELECT user_id, kind, id FROM ledger_accounts WHERE user_id IS NOT NULL")}
        system = dict(conn.execute("SELECT kind, id FROM ledger_accounts WHERE user_id IS NULL").fetchall())
        small_id, big_id = creators
        t_end = conn.execute("SELECT now() - interval '1 hour'").fetchone()[0]
        t0 = conn.execute("SELECT %s::timestamptz - %s * interval '1 day'", (t_end, SPAN_DAYS)).fetchone()[0]
        conn.execute("CREATE TEMP TABLE g_creators (creator_id bigint, earnings bigint, n bigint, streams int, "
                     "calls int, nf int, ran bigint, tips bigint)")
        conn.execute("CREATE TEMP TABLE g_fans (creator_id bigint, idx int, user_id bigint, wallet bigint)")
        for cid, n, nf in ((small_id, small, SMALL_FANS), (big_id, big, FANS)):
            streams, calls = _scale(n)
            conn.execute("INSERT INTO g_creators (creator_id, earnings, n, streams, calls, nf) VALUES (%s, %s, %s, %s, %s, %s)",
                         (cid, acc[(cid, "earnings")], n, streams, calls, nf))
            conn.execute("INSERT INTO g_fans SELECT %s, i - 1, u, w FROM unnest(%s::bigint[], %s::bigint[]) "
                         "WITH ORDINALITY AS x(u, w, i)", (cid, fans[:nf], [acc[(f, "wallet")] for f in fans[:nf]]))

        def base(table: str) -> int:
            return conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]

        params = {"t0": t0, "t_end": t_end, "share": share, "block_s": block_s, "block_ms": block_s * 1000,
                  "fees": system["platform_fees"], "sales": system["token_sales"], "pmax": PURCHASE_MAX,
                  "cents": 1, "stream_base": base("streams"), "ticket_base": base("tickets"),
                  "call_base": base("calls"), "tip_base": base("tips"), "purchase_base": base("purchases"),
                  "transfer_base": base("ledger_transfers"), "entry_base": base("ledger_entries")}
        from app.payments.providers import price_cents
        params["cents"] = price_cents(1)  # price of one token
        t = time.perf_counter()
        for sql in GENERATE + WRITE:
            conn.execute(sql, params)
        for seq, table in SEQUENCES.items():
            conn.execute(f"SELECT setval('{seq}', greatest(1, (SELECT coalesce(max(id), 0) FROM {table})))")
        mix = {row[0]: row[1:] for row in conn.execute("""
            SELECT c.creator_id, c.n,
                   (SELECT count(*) FROM streams s WHERE s.creator_id = c.creator_id),
                   (SELECT count(*) FROM streams s WHERE s.creator_id = c.creator_id AND s.settlement_transfer_id IS NOT NULL),
                   (SELECT count(*) FROM tickets t JOIN streams s ON s.id = t.stream_id WHERE s.creator_id = c.creator_id),
                   (SELECT count(*) FROM calls l WHERE l.creator_id = c.creator_id),
                   (SELECT sum(blocks_charged) FROM calls l WHERE l.creator_id = c.creator_id),
                   (SELECT count(*) FROM tips p WHERE p.creator_id = c.creator_id),
                   (SELECT count(*) FILTER (WHERE stream_id IS NOT NULL) FROM tips p WHERE p.creator_id = c.creator_id),
                   (SELECT count(*) FILTER (WHERE call_id IS NOT NULL) FROM tips p WHERE p.creator_id = c.creator_id)
              FROM g_creators c""")}
        conn.commit()
        load_s = time.perf_counter() - t
        counts = dict(conn.execute("""SELECT a.user_id, count(*) FROM ledger_entries e JOIN ledger_accounts a
                                      ON a.id = e.account_id WHERE a.kind = 'earnings' GROUP BY 1""").fetchall())
        total = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
    with connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {"small": small_id, "big": big_id, "load_s": load_s, "mix": mix,
            "earning_entries": {"small": counts.get(small_id), "big": counts.get(big_id)}, "entries": total}


# ---- the backlog: entries the rollups have not seen --------------------------------

# `n` tips to the big creator from its fans in the last TAIL_MINUTES, written as the
# history is (app/tips' transfers, tip rows, purchases funding them first), after the
# rollups were built and without running them: what a dashboard finds when the
# worker has been stopped, or fell behind a burst of tips.
TAIL_MINUTES = 10
TAIL = [
    """
    CREATE TEMP TABLE t_fans AS
    SELECT row_number() OVER (ORDER BY u.id) - 1 AS idx, u.id AS user_id, a.id AS wallet
      FROM users u JOIN ledger_accounts a ON a.user_id = u.id AND a.kind = 'wallet'
     WHERE u.role = 'fan' AND u.email LIKE '%%@bench.example'
    """,
    """
    CREATE TEMP TABLE t_tip AS
    SELECT %(tip_base)s + i AS id, f.user_id AS sender_id, f.wallet, 5 + floor(random() ^ 3 * 496)::bigint AS amount,
           %(t1)s - (%(n)s - i) * (%(minutes)s * interval '1 minute' / %(n)s) AS at
      FROM generate_series(1, %(n)s) AS i JOIN t_fans f ON f.idx = i %% (SELECT count(*) FROM t_fans)
    """,
    """
    CREATE TEMP TABLE t_purchase AS
    SELECT %(purchase_base)s + row_number() OVER (ORDER BY sender_id) AS id, sender_id AS user_id, wallet,
           sum(amount) AS amount, min(at) - interval '1 minute' AS at
      FROM t_tip GROUP BY sender_id, wallet
    """,
    """
    CREATE TEMP TABLE t_tx AS
    SELECT key, kind, metadata, at, %(transfer_base)s + row_number() OVER (ORDER BY at, key) AS tid FROM (
        SELECT 'purchase:' || id AS key, 'purchase' AS kind,
               jsonb_build_object('purchaseId', id, 'provider', 'demo') AS metadata, at FROM t_purchase
        UNION ALL
        SELECT 'tip:' || id, 'tip', jsonb_build_object('creatorId', %(creator)s::bigint, 'fanId', sender_id, 'tipId', id),
               at FROM t_tip) x
    """,
    """
    CREATE TEMP TABLE t_leg AS
    SELECT 'purchase:' || p.id AS key, l.account, l.amount, l.o FROM t_purchase p
     CROSS JOIN LATERAL (VALUES (%(sales)s::bigint, -p.amount, 1), (p.wallet, p.amount, 2)) AS l(account, amount, o)
    UNION ALL
    SELECT 'tip:' || t.id, l.account, l.amount, l.o FROM t_tip t
     CROSS JOIN LATERAL (VALUES (t.wallet, -t.amount, 1), (%(earnings)s::bigint, t.amount * %(share)s / 100, 2),
                                (%(fees)s::bigint, t.amount - t.amount * %(share)s / 100, 3)) AS l(account, amount, o)
    """,
    """
    INSERT INTO ledger_transfers (id, kind, idempotency_key, metadata, created_at)
    SELECT tid, kind, key, metadata, at FROM t_tx ORDER BY tid
    """,
    # A cached account's running balance continues from its balance now.
    """
    INSERT INTO ledger_entries (id, transfer_id, account_id, amount, balance_after, created_at)
    SELECT %(entry_base)s + row_number() OVER (ORDER BY x.tid, l.o), x.tid, l.account, l.amount,
           CASE WHEN a.cached THEN a.balance + sum(l.amount) OVER (PARTITION BY l.account ORDER BY x.tid, l.o) END,
           x.at
      FROM t_leg l JOIN t_tx x USING (key) JOIN ledger_accounts a ON a.id = l.account
     ORDER BY 1
    """,
    """
    INSERT INTO purchases (id, user_id, amount_tokens, amount_cents, provider, provider_ref, status, transfer_id,
                           created_at, completed_at)
    SELECT p.id, p.user_id, p.amount, p.amount * %(cents)s, 'demo', 'demo-bench-' || p.id, 'completed', x.tid,
           p.at, p.at
      FROM t_purchase p JOIN t_tx x ON x.key = 'purchase:' || p.id ORDER BY p.id
    """,
    """
    INSERT INTO tips (id, sender_id, creator_id, amount, creator_share, platform_share, message, stream_id, call_id,
                      channel, transfer_id, created_at)
    SELECT t.id, t.sender_id, %(creator)s, t.amount, t.amount * %(share)s / 100, t.amount - t.amount * %(share)s / 100,
           '', NULL, NULL, NULL, x.tid, t.at
      FROM t_tip t JOIN t_tx x ON x.key = 'tip:' || t.id ORDER BY t.id
    """,
    "UPDATE ledger_accounts a SET balance = a.balance + s.total FROM (SELECT account, sum(amount) AS total FROM t_leg "
    "GROUP BY 1) s WHERE s.account = a.id AND a.cached",
]


def add_backlog(db_url: str, creator_id: int, n: int, share: int) -> dict:
    """Write `n` tips to `creator_id` above the rollup watermark (see TAIL); returns
    how many earning entries of theirs and entries in all are now above it."""
    from app.payments.providers import price_cents
    with connect(libpq_url(db_url)) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SELECT setseed(0.2025)")

        def base(table: str) -> int:
            return conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        system = dict(conn.execute("SELECT kind, id FROM ledger_accounts WHERE user_id IS NULL").fetchall())
        earnings = conn.execute("SELECT id FROM ledger_accounts WHERE user_id = %s AND kind = 'earnings'",
                                (creator_id,)).fetchone()[0]
        params = {"n": n, "minutes": TAIL_MINUTES, "creator": creator_id, "earnings": earnings, "share": share,
                  "fees": system["platform_fees"], "sales": system["token_sales"], "cents": price_cents(1),
                  "t1": conn.execute("SELECT now() - interval '1 second'").fetchone()[0],
                  "tip_base": base("tips"), "purchase_base": base("purchases"),
                  "transfer_base": base("ledger_transfers"), "entry_base": base("ledger_entries")}
        for sql in TAIL:
            conn.execute(sql, params)
        for seq, table in SEQUENCES.items():
            conn.execute(f"SELECT setval('{seq}', greatest(1, (SELECT coalesce(max(id), 0) FROM {table})))")
        conn.commit()
        w = conn.execute("SELECT last_entry_id FROM rollup_state WHERE id = 1").fetchone()[0]
        mine = conn.execute("SELECT count(*) FROM ledger_entries WHERE account_id = %s AND id > %s",
                            (earnings, w)).fetchone()[0]
        total = conn.execute("SELECT count(*) FROM ledger_entries WHERE id > %s", (w,)).fetchone()[0]
    with connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("ANALYZE")  # not VACUUM: new entries' pages are not all-visible yet in real life either
    return {"earning_entries": mine, "entries": total, "watermark": w}


# ---- measuring -----------------------------------------------------------------

def p95(xs):
    return statistics.quantiles(xs, n=20)[18]


def logged_in_client(app, user_id: int):
    """A test client holding `user_id`'s session cookie, as after /login: a
    `user_sessions` row and its secret in the cookie (app/auth/sessions.py)."""
    import secrets
    from app.auth import sessions
    from app.auth.models import UserSession
    from app.extensions import db
    raw = secrets.token_urlsafe(32)
    with app.app_context():
        db.session.add(UserSession(user_id=user_id, secret_hash=sessions._hash(raw), user_agent="bench"))
        db.session.commit()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = str(user_id)
        sess["_fresh"] = True
        sess[sessions.SESSION_KEY] = raw
    return client


def timed_get(client, url: str) -> float:
    """ms for one full GET of a dashboard page (the body read to the end)."""
    t = time.perf_counter()
    resp = client.get(url)
    body = resp.get_data()
    ms = (time.perf_counter() - t) * 1000
    assert resp.status_code == 200 and b'data-testid="earned-total"' in body, resp.status_code
    return ms


def page_times(app, clients: dict, range_: str, rounds: int, warmup: int = 10) -> dict:
    """ms per full GET /dashboard?range=…, alternating the creators each round."""
    url = f"/dashboard?range={range_}"
    for _ in range(warmup):  # caches, connection pool, template compilation
        for client in clients.values():
            timed_get(client, url)
    times = {label: [] for label in clients}
    for _ in range(rounds):
        for label, client in clients.items():
            times[label].append(timed_get(client, url))
    return times


def page_calls(range_: str):
    """Every data-fetching call GET /dashboard?range=… makes (app/dashboard/routes.py and
    base.html for a creator), by name."""
    from app.calls.display import pending_requests
    from app.dashboard import display, routes
    from app.dashboard import service as svc
    from app.tips.service import recent_tips
    from app.wallet.service import wallet_balance

    def chart(c):
        series = svc.earnings_series(c, range_)
        return display.bar_chart(series.points, series.unit)
    return {
        "keep_current": lambda c: svc.keep_current(c),
        "creator_earnings": lambda c: svc.creator_earnings(c, range_),
        "earnings_series+chart": chart,
        "top_fans": lambda c: svc.top_fans(c, range_, limit=routes.TOP_FANS),
        "stream_revenue": lambda c: svc.stream_revenue(c, range_, limit=routes.STREAMS_SHOWN),
        "call_revenue": lambda c: svc.call_revenue(c, range_, limit=routes.CALLS_SHOWN),
        "recent_tips": lambda c: recent_tips(creator_id=c.id, limit=10),
        "pending_call_requests": lambda c: pending_requests(c.id),
        "nav_balance": lambda c: wallet_balance(c),
    }


def call_times(app, ids: dict, range_: str, rounds: int) -> dict:
    """{call name: {label: [ms]}}: each page call timed alone, creators alternating;
    then "render" — the page's templates, given those calls' results."""
    from flask_login import login_user
    from app.auth.models import User
    from app.dashboard import routes
    from app.extensions import db
    out = {}
    calls = page_calls(range_)
    with app.test_request_context(f"/dashboard?range={range_}"):
        creators = {label: db.session.get(User, uid) for label, uid in ids.items()}
        for name, fn in calls.items():
            for _ in range(5):
                for c in creators.values():
                    fn(c)
                    db.session.rollback()
            times = {label: [] for label in creators}
            for _ in range(rounds):
                for label, c in creators.items():
                    t = time.perf_counter()
                    fn(c)
                    times[label].append((time.perf_counter() - t) * 1000)
                    db.session.rollback()
            out[name] = times
        context = {label: dict(earnings=calls["creator_earnings"](c), chart=calls["earnings_series+chart"](c),
                               fans=calls["top_fans"](c), streams=calls["stream_revenue"](c),
                               calls=calls["call_revenue"](c), recent=calls["recent_tips"](c),
                               streams_shown=routes.STREAMS_SHOWN, calls_shown=routes.CALLS_SHOWN)
                   for label, c in creators.items()}
        times = {label: [] for label in creators}
        for i in range(rounds + 5):
            for label, c in creators.items():
                login_user(c)
                t = time.perf_counter()
                routes._render("dashboard/creator.html", "dashboard/_creator_body.html", range_, None,
                               **context[label])
                if i >= 5:  # the first ones compile the templates
                    times[label].append((time.perf_counter() - t) * 1000)
                db.session.rollback()
        out["render (templates)"] = times
    return out


def explain(db_url: str, redis: str, creator_id: int, range_: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement a page's calls run for the big
    creator (--explain): the plans behind the breakdown."""
    from sqlalchemy import event
    from app.auth.models import User
    from app.extensions import db
    app = _app(db_url, redis)
    with app.app_context():
        creator = db.session.get(User, creator_id)
        seen: list = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                seen.append((statement, parameters))
        for name, fn in page_calls(range_).items():
            seen.clear()
            event.listen(db.engine, "before_cursor_execute", capture)
            try:
                fn(creator)
            finally:
                event.remove(db.engine, "before_cursor_execute", capture)
            db.session.rollback()
            for statement, parameters in list(seen):
                with db.engine.connect() as conn:
                    plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
                print(f"--- {name}\n{statement.strip()}\n" + "\n".join(r[0] for r in plan), flush=True)


def show(label: str, times: dict, entries: dict) -> float:
    ps, pb = p95(times["small"]), p95(times["big"])
    print(f"{label}")
    for who, p in (("small", ps), ("big  ", pb)):
        print(f"  {who} ({entries[who.strip()]:>9,} earning entries): "
              f"p50 {statistics.median(times[who.strip()]):7.2f} ms  p95 {p:7.2f} ms")
    return pb / ps


def inexact(app, ids: dict) -> list[str]:
    """Hard check: each creator's earnings of every range, as the dashboard computes
    them (rollups + the entries above the watermark), equal plain SQL over the
    entries. [] when they all do."""
    from app.auth.models import User
    from app.dashboard import service as svc
    from app.dashboard.ranges import midnight, start_day
    from app.dashboard.sources import EARNING_KINDS
    from app.extensions import db
    problems = []
    with app.app_context():
        for label, uid in ids.items():
            creator = db.session.get(User, uid)
            for range_ in RANGES:
                direct = db.session.execute(db.text(
                    "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e "
                    "JOIN ledger_accounts a ON a.id = e.account_id JOIN ledger_transfers t ON t.id = e.transfer_id "
                    "WHERE a.user_id = :c AND a.kind = 'earnings' AND t.kind = ANY(:k) AND e.created_at >= :ts"),
                    {"c": uid, "k": list(EARNING_KINDS), "ts": midnight(start_day(range_))}).scalar_one()
                got = svc.creator_earnings(creator, range_).total
                if got != direct:
                    problems.append(f"{label} {range_}: dashboard {got} != entries {direct}")
                db.session.rollback()
    return problems


def measure_ranges(app, clients: dict, entries: dict, rounds: int, title: str) -> dict:
    """{range: (p95 small, p95 big, ratio)} over every range, printed as it goes."""
    out = {}
    for range_ in RANGES:
        times = page_times(app, clients, range_, rounds)
        ratio = show(f"{title}: GET /dashboard?range={range_}, {rounds} requests each, alternating:", times, entries)
        out[range_] = (p95(times["small"]), p95(times["big"]), ratio)
        print(f"  ratio p95(big)/p95(small) = {ratio:.2f}  (target <= {TARGET}: "
              f"{'PASS' if ratio <= TARGET else 'FAIL'})", flush=True)
    return out


EXPORT_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from _common import _app
from app.auth.models import User
from app.extensions import db
from app.dashboard import service
app = _app({db!r}, {redis!r})
with app.app_context():
    creator = db.session.get(User, {cid})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter(); lines = 0; size = 0
    for chunk in service.export_earnings_csv(creator, {range_!r}):
        lines += chunk.count("\\n"); size += len(chunk)
    print(json.dumps({{"range": {range_!r}, "rows": lines - 1, "bytes": size, "seconds": time.perf_counter() - t,
                      "rss_before_kb": before, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--tail", type=int, default=100_000,
                        help="tips to the big creator not rolled up, for the second scenario (0: skip it)")
    parser.add_argument("--rounds", type=int, default=300, help="page requests per creator, range and scenario")
    parser.add_argument("--live-rounds", type=int, default=20,
                        help="requests per creator of the reference run reading the backlog live")
    parser.add_argument("--call-rounds", type=int, default=100,
                        help="rounds of the per-call breakdown of the 30d and all pages (0: skip it)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the big creator's queries")
    parser.add_argument("--export", action="store_true", help="also time the CSV export of the big creator")
    parser.add_argument("--no-export", action="store_true", help=argparse.SUPPRESS)  # the default now
    args = parser.parse_args()
    failures: list[str] = []   # hard checks: books, exact figures
    with fresh_services() as (_name, db_url, redis):
        app = _app(db_url, redis)
        share, block_s = app.config["CREATOR_SHARE_PERCENT"], app.config["BILLING_BLOCK_SECONDS"]
        print(f"loading {args.small:,} + {args.big:,} earning entries ...", flush=True)
        with app.app_context():
            built = build(db_url, args.big, args.small, share, block_s)
        print(f"  loaded in {built['load_s']:.1f}s: {built['entries']:,} entries in all; earning entries "
              f"small={built['earning_entries']['small']:,} big={built['earning_entries']['big']:,}", flush=True)
        for label in ("small", "big"):
            n, streams, settled, tickets, calls, blocks, tips, in_stream, in_call = built["mix"][built[label]]
            print(f"  {label:5}: {streams:,} streams ({settled:,} settled shows, {tickets:,} tickets), {calls:,} calls "
                  f"({blocks:,} blocks), {tips:,} tips ({in_stream:,} during streams, {in_call:,} during calls)")
        ids = {"small": built["small"], "big": built["big"]}
        entries = dict(built["earning_entries"])
        with app.app_context():
            from app import ledger
            from app.dashboard import rollups
            from app.extensions import db
            if not books_balance(ledger):
                return 1
            t = time.perf_counter()
            rolled = rollups.run(wait_seconds=30)
            print(f"rollups built: {rolled['rolled']:,} entries in {time.perf_counter() - t:.1f}s", flush=True)
            db.session.commit()
        with connect(libpq_url(db_url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        if args.explain:
            explain(db_url, redis, ids["big"], PAGE_RANGE)
        failures += inexact(app, ids)

        # No app context is held here: each request gets its own, as in production.
        clients = {label: logged_in_client(app, uid) for label, uid in ids.items()}
        results = {"A": measure_ranges(app, clients, entries, args.rounds, "A, rolled up")}

        if args.call_rounds:
            for range_ in (PAGE_RANGE, "all"):
                print(f"per call of GET /dashboard?range={range_}, {args.call_rounds} rounds each, ms:")
                print(f"  {'call':24} {'p95 small':>9} {'p95 big':>9} {'ratio':>6}   {'p50 small':>9} {'p50 big':>9}")
                for name, times in call_times(app, ids, range_, args.call_rounds).items():
                    ps, pb = p95(times["small"]), p95(times["big"])
                    print(f"  {name:24} {ps:9.2f} {pb:9.2f} {pb / ps:6.2f}   {statistics.median(times['small']):9.2f} "
                          f"{statistics.median(times['big']):9.2f}", flush=True)

        first = live = None
        if args.tail:
            print(f"adding {args.tail:,} tips to the big creator, not rolled up ...", flush=True)
            with app.app_context():
                backlog = add_backlog(db_url, ids["big"], args.tail, share)
                entries["big"] += backlog["earning_entries"]
                print(f"  above the watermark: {backlog['entries']:,} entries, {backlog['earning_entries']:,} of them "
                      f"the big creator's earnings", flush=True)
                from app import ledger
                if not books_balance(ledger):
                    return 1
            failures += inexact(app, ids)   # read live, before any catch-up
            from app.dashboard import rollups
            # Reference: what reading the backlog live on every request costs (catch-up off).
            limit, rollups.LIVE_LIMIT = rollups.LIVE_LIMIT, 10 ** 12
            live = {}
            for range_ in (PAGE_RANGE, "all"):
                times = page_times(app, clients, range_, args.live_rounds, warmup=1)
                live[range_] = show(f"B read live (reference, no catch-up): GET /dashboard?range={range_}, "
                                    f"{args.live_rounds} requests each:", times, entries)
            if args.call_rounds:
                rounds = max(3, args.live_rounds // 2)
                print(f"per call of GET /dashboard?range=all reading the backlog live, {rounds} rounds each, ms:")
                for name, times in call_times(app, ids, "all", rounds).items():
                    print(f"  {name:24} p50 small {statistics.median(times['small']):9.2f}  "
                          f"p50 big {statistics.median(times['big']):9.2f}", flush=True)
            rollups.LIVE_LIMIT = limit
            with app.app_context():
                from app.extensions import db
                w = rollups.watermark()
                db.session.rollback()
            first = timed_get(clients["big"], f"/dashboard?range={PAGE_RANGE}")
            with app.app_context():
                caught_up = rollups.watermark() - w
                db.session.rollback()
            print(f"B: the big creator's first page found {backlog['earning_entries']:,} of its entries above the "
                  f"watermark and rolled up {caught_up:,} entries first: {first:.0f} ms", flush=True)
            results["B"] = measure_ranges(app, clients, entries, args.rounds, "B, after the catch-up")
            failures += inexact(app, ids)
            with app.app_context():
                from app import ledger
                if not books_balance(ledger):
                    return 1

        if args.export:
            bench_dir = str(Path(__file__).resolve().parent)
            for range_ in ("30d", "all"):
                code = EXPORT_CHILD.format(root=bench_dir, db=db_url, redis=redis, cid=ids["big"], range_=range_)
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"CSV export {range_}: {res['rows']:,} rows, {res['bytes'] / 1e6:.1f} MB in "
                      f"{res['seconds']:.1f}s, RSS before {res['rss_before_kb'] / 1024:.0f} MB, peak {res['peak_rss_kb'] / 1024:.0f} MB")

    names = {"A": "A: rolled up", "B": f"B: +{args.tail:,} not rolled up"}
    print(f"\nsummary: GET /dashboard p95, small ({entries['small']:,} earning entries) vs big "
          f"({entries['big']:,} in B, {built['earning_entries']['big']:,} in A); target: every ratio <= {TARGET}")
    print(f"  {'scenario':28} {'range':6} {'p95 small':>10} {'p95 big':>10} {'ratio':>6}  verdict")
    missed = 0
    for key, per_range in results.items():
        for range_, (ps, pb, ratio) in per_range.items():
            ok = ratio <= TARGET
            missed += not ok
            print(f"  {names[key]:28} {range_:6} {ps:8.2f}ms {pb:8.2f}ms {ratio:6.2f}  {'PASS' if ok else 'FAIL'}")
    if first is not None:
        print(f"  B's first page of the big creator (rolls the backlog up): {first:.0f} ms; reading it live instead, "
              + ", ".join(f"{r} ratio {v:.2f}" for r, v in live.items()))
    for problem in failures:
        print(f"  INEXACT: {problem}")
    print(f"  figures exact against the entries: {'yes' if not failures else 'NO'}")
    if failures:
        return 1
    return 2 if missed else 0


def books_balance(ledger) -> bool:
    """Hard check: `ledger.verify()` finds nothing (printed)."""
    t = time.perf_counter()
    violations = ledger.verify()
    print(f"  ledger verify: {len(violations)} violations ({time.perf_counter() - t:.1f}s)", flush=True)
    for v in violations[:10]:
        print(f"    {v}")
    return not violations


if __name__ == "__main__":
    sys.exit(main())
