"""Metering benchmark: one tick over 10,000 active calls, versus bulk SQL.

What is measured
----------------
A fresh database gets 2 × `--calls` (default 10,000 each) funded fans,
creators at 60 tokens/min and active calls between them (built with bulk
SQL; block 0 counts as already paid so each tick has exactly one due block
per call). Two sets, A and B, take turns:

* the **meter**: `app.calls.service.meter()` — what the worker's cron and
  `POST /api/billing/meter` run — charges the next block of every call in
  one set (the other set is parked as paused so the tick sees only its own);
* the **baseline**: one bulk SQL statement (data-modifying CTEs) does the same
  debits for the other set: wallet UPDATE, transfer, three entries, billing
  event and call counters, for all its calls at once.

Rounds alternate which set each method gets, so drift hits both alike. Each
round's clock moves 30 s (one block). Target (issue 5): a tick for 10,000
calls under 2 s and ≥ 0.3× the bulk-SQL blocks/s. Afterwards the ledger is
verified and every call's block count checked.

Usage::

    .venv/bin/python bench/metering.py [--calls 10000] [--rounds 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402

from _common import _app, fresh_services, libpq_url  # noqa: E402

TARGET_RATIO, TARGET_SECONDS = 0.3, 2.0
RATE, BLOCK = 60, 30  # 30 tokens per block: creator 24, platform 6
FUND = 1_000_000
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

SETUP = """
DO $$
DECLARE n int := %(n)s; sales bigint; base bigint;
BEGIN
  SELECT id INTO sales FROM ledger_accounts WHERE kind = 'token_sales';
  INSERT INTO users (email, password_hash, display_name, role)
       SELECT 'bench-fan-' || i || '@example.com', 'x', 'Fan ' || i, 'fan' FROM generate_series(1, 2 * n) i;
  INSERT INTO users (email, password_hash, display_name, role, call_rate_tokens_per_min, calls_enabled)
       SELECT 'bench-creator-' || i || '@example.com', 'x', 'Creator ' || i, 'creator', 60, true
         FROM generate_series(1, 2 * n) i;
  INSERT INTO ledger_accounts (kind, user_id, cached)
       SELECT CASE WHEN role = 'fan' THEN 'wallet' ELSE 'earnings' END, id, role = 'fan' FROM users
        WHERE email LIKE 'bench-%%';
  INSERT INTO ledger_accounts (kind, user_id, cached)
       SELECT 'wallet', id, true FROM users WHERE email LIKE 'bench-creator-%%';
  -- Fund every fan: one purchase transfer each (set-based, ids reserved from the sequence).
  CREATE TEMP TABLE fund ON COMMIT DROP AS
       SELECT a.id AS wallet, a.user_id, nextval(pg_get_serial_sequence('ledger_transfers', 'id')) AS tid
         FROM ledger_accounts a JOIN users u ON u.id = a.user_id
        WHERE u.email LIKE 'bench-fan-%%' AND a.kind = 'wallet';
  INSERT INTO ledger_transfers (id, kind, idempotency_key)
       SELECT tid, 'purchase', 'bench-fund:' || user_id FROM fund;
  INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
       SELECT tid, wallet, %(fund)s, %(fund)s FROM fund
       UNION ALL SELECT tid, sales, -%(fund)s, NULL FROM fund;
  UPDATE ledger_accounts a SET balance = %(fund)s FROM fund f WHERE a.id = f.wallet;
  INSERT INTO purchases (user_id, amount_tokens, amount_cents, provider, status, transfer_id, completed_at)
       SELECT user_id, %(fund)s, %(fund)s, 'demo', 'completed', tid, now() FROM fund;
  -- Call i: fan i with creator i; block 0 counts as paid, so every tick has one block due per call.
  INSERT INTO calls (fan_id, creator_id, rate, block_seconds, status, channel, requested_at, accepted_at,
                     active_since, blocks_charged, total_charged)
       SELECT f.id, c.id, 60, 30, 'active', 'bench-c-' || f.id, %(t0)s, %(t0)s, %(t0)s, 1, 30
         FROM users f JOIN users c ON c.email = replace(f.email, 'bench-fan-', 'bench-creator-')
        WHERE f.email LIKE 'bench-fan-%%' ORDER BY f.id;
END $$;
"""

BULK = """
WITH due AS (
    SELECT c.id AS call_id, c.creator_id, w.id AS wallet, e.id AS earnings, 30 AS price
      FROM calls c
      JOIN ledger_accounts w ON w.user_id = c.fan_id AND w.kind = 'wallet'
      JOIN ledger_accounts e ON e.user_id = c.creator_id AND e.kind = 'earnings'
     WHERE c.id = ANY(%(ids)s) AND c.blocks_charged = %(k)s),
debited AS (
    UPDATE ledger_accounts a SET balance = a.balance - d.price FROM due d
     WHERE a.id = d.wallet AND a.balance >= d.price
    RETURNING d.call_id, d.creator_id, d.wallet, d.earnings, d.price, a.balance,
              nextval(pg_get_serial_sequence('ledger_transfers', 'id')) AS transfer_id),
transfers AS (
    INSERT INTO ledger_transfers (id, kind, idempotency_key, metadata)
    SELECT transfer_id, 'call_block', 'call:' || call_id || ':block:' || %(k)s,
           jsonb_build_object('callId', call_id, 'blockIndex', %(k)s, 'creatorId', creator_id)
      FROM debited),
entries AS (
    INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
    SELECT transfer_id, wallet, -price, balance FROM debited
    UNION ALL SELECT transfer_id, earnings, 24, NULL FROM debited
    UNION ALL SELECT transfer_id, %(fees)s, 6, NULL FROM debited),
events AS (
    INSERT INTO billing_events (call_id, type, block_index, amount, creator_share, platform_share, transfer_id)
    SELECT call_id, 'block_charged', %(k)s, price, 24, 6, transfer_id FROM debited)
UPDATE calls c SET blocks_charged = %(k)s + 1, total_charged = c.total_charged + d.price
  FROM debited d WHERE c.id = d.call_id
"""


def park(conn, ids, parked: bool) -> None:
    """Take a set out of the meter's sight (paused) or put it back (active since T0)."""
    if parked:
        conn.execute("UPDATE calls SET status = 'paused', active_since = NULL WHERE id = ANY(%s)", (ids,))
    else:
        conn.execute("UPDATE calls SET status = 'active', active_since = %s WHERE id = ANY(%s)", (T0, ids))
    conn.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="METER_THREADS (default: the app's, 2)")
    parser.add_argument("--batch", type=int, default=None, help="calls per batch (default: the meter's, 500)")
    args = parser.parse_args()

    with fresh_services() as (name, db_url, redis):
        conn = psycopg.connect(libpq_url(db_url))
        started = time.perf_counter()
        conn.execute(SETUP % {"n": args.calls, "fund": FUND, "t0": f"'{T0.isoformat()}'"})
        conn.commit()
        # Statistics, as a running database has them (autovacuum would get there in
        # its own time; without them the planner guesses one row per table and the
        # bulk statement's joins go quadratic).
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
        ids = [r[0] for r in conn.execute("SELECT id FROM calls ORDER BY id")]
        fees = conn.execute("SELECT id FROM ledger_accounts WHERE kind = 'platform_fees'").fetchone()[0]
        sets = {"A": ids[:args.calls], "B": ids[args.calls:]}
        print(f"database {name}; 2 × {args.calls:,} active calls set up in {time.perf_counter() - started:.1f} s\n")

        app = _app(db_url, redis)
        meter_rates, bulk_rates, meter_seconds = [], [], []
        with app.app_context():
            from app.calls import service
            from app.ledger import verify
            for r in range(args.rounds):
                k = r + 1  # the block due in this round
                at = T0 + timedelta(seconds=BLOCK * k)
                metered, bulked = ("A", "B") if r % 2 == 0 else ("B", "A")

                t = time.perf_counter()
                conn.execute(BULK, {"ids": sets[bulked], "k": k, "fees": fees})
                conn.commit()
                bulk_s = time.perf_counter() - t
                bulk_rates.append(args.calls / bulk_s)

                park(conn, sets[bulked], True)
                app.extensions["clock"] = lambda at=at: at
                t, cpu = time.perf_counter(), time.process_time()
                result = service.meter(threads=args.threads, **({"batch": args.batch} if args.batch else {}))
                meter_s, cpu_s = time.perf_counter() - t, time.process_time() - cpu
                park(conn, sets[bulked], False)
                assert result.blocks_charged == args.calls, result
                meter_rates.append(result.blocks_charged / meter_s)
                meter_seconds.append(meter_s)
                print(f"  round {r + 1} (block {k}): meter set {metered} {meter_s:6.2f} s "
                      f"({meter_rates[-1]:7,.0f} blocks/s, Python CPU {cpu_s:4.2f} s)   bulk SQL set {bulked} {bulk_s:6.2f} s "
                      f"({bulk_rates[-1]:7,.0f} blocks/s)", flush=True)
            violations = verify()

        counts = dict(conn.execute("SELECT blocks_charged, count(*) FROM calls GROUP BY 1").fetchall())
        conn.close()
        meter_rate = sum(meter_rates) / len(meter_rates)
        bulk_rate = sum(bulk_rates) / len(bulk_rates)
        worst = max(meter_seconds)
        ratio = meter_rate / bulk_rate
        ok = ratio >= TARGET_RATIO and worst <= TARGET_SECONDS
        print(f"\nmeter {meter_rate:,.0f} blocks/s, bulk SQL {bulk_rate:,.0f} blocks/s: ratio {ratio:.2f} "
              f"(target ≥ {TARGET_RATIO}); slowest tick {worst:.2f} s for {args.calls:,} calls "
              f"(target ≤ {TARGET_SECONDS} s)  {'PASS' if ok else 'FAIL'}")
        expected = {args.rounds + 1: 2 * args.calls}
        print(f"books: blocks per call {counts} (expected {expected}); ledger verify: "
              f"{'clean' if not violations else [str(v) for v in violations[:3]]}")
        return 0 if ok and counts == expected and not violations else 1


if __name__ == "__main__":
    sys.exit(main())
