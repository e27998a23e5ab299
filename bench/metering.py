"""Metering benchmark: the worker's tick at 10,000 and at 100,000 active calls, one run.

What is measured
----------------
Two fresh databases, built with bulk SQL (funded fans, creators at 60 tokens/min,
active calls between them; block 0 counts as already paid, so each round has
exactly one due block per call; both parties' pages heartbeat in Redis):

* **small** (`--calls`' first size, default 10,000) holds 2 × that many calls, sets
  A and B. Each round `meter()` bills one set while one bulk SQL statement
  (data-modifying CTEs: wallet debits, transfers, entries, billing events,
  call counters) does the same debits for the other set — the baseline the
  meter's throughput is compared against (issue 5); rounds alternate the sets.
* **large** (the second size, default 100,000) holds that many calls; each
  round's tick bills them all.

A **tick** is what the worker's cron runs every `BILLING_TICK_SECONDS`
(`app.calls.cron.meter_calls`): the presence sweep (every present party's
heartbeat checked in Redis) and then `meter()`, which charges, writes the
receipts and renders and publishes every call's page update and every fan's
balance. Both parts are timed; the small and large ticks alternate which goes
first, so drift hits both alike. Each round's clock moves 30 s (one block): the
worst case, every call's block due in the same tick. After the rounds each
database gets a **quiet tick** (nothing due, 1 s later): the cost a tick pays
whatever is due, which decides whether ticks every 5 s keep up.

Targets (issue 19): the large tick ≤ 10× the small tick (mean of the rounds;
at most linear growth), and the slowest large tick well inside the 30-second
block. Kept from issue 5 for the small size: tick ≤ 2 s and the meter ≥ 0.3×
the bulk statement's blocks/s. Afterwards both ledgers are verified and every
call's block count checked; the run exits non-zero if a target or a check fails.

Usage::

    .venv/bin/python bench/metering.py [--calls 10000,100000] [--rounds 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402

from _common import (BENCH_INSTANCE, create_database, drop_database, libpq_url, migrate,  # noqa: E402
                     redis_url, server_url)

from app import embedded  # noqa: E402

TARGET_GROWTH, TARGET_BLOCK_SECONDS = 10.0, 30.0  # issue 19
TARGET_RATIO, TARGET_SECONDS = 0.3, 2.0  # issue 5, at the small size
RATE, BLOCK = 60, 30  # 30 tokens per block: creator 24, platform 6
FUND = 1_000_000
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

SETUP = """
DO $$
DECLARE n int := %(n)s; sales bigint;
BEGIN
  SELECT id INTO sales FROM ledger_accounts WHERE kind = 'token_sales';
  INSERT INTO users (email, password_hash, display_name, role)
       SELECT 'bench-fan-' || i || '@example.com', 'x', 'Fan ' || i, 'fan' FROM generate_series(1, n) i;
  INSERT INTO users (email, password_hash, display_name, role, call_rate_tokens_per_min, calls_enabled)
       SELECT 'bench-creator-' || i || '@example.com', 'x', 'Creator ' || i, 'creator', 60, true
         FROM generate_series(1, n) i;
  INSERT INTO ledger_accounts (kind, user_id, cached)
       SELECT CASE WHEN role = 'fan' THEN 'wallet' ELSE 'earnings' END, id, role = 'fan' FROM users
        WHERE email LIKE 'bench-%%';
  INSERT INTO ledger_accounts (kind, user_id, cached)
       SELECT 'wallet', id, true FROM users WHERE email LIKE 'bench-creator-%%';
  -- Fund every fan: one completed purchase each and its transfer, keyed by the purchase
  -- as the ledger's verify expects (set-based, ids reserved from the sequences).
  CREATE TEMP TABLE fund ON COMMIT DROP AS
       SELECT a.id AS wallet, a.user_id, nextval(pg_get_serial_sequence('ledger_transfers', 'id')) AS tid,
              nextval(pg_get_serial_sequence('purchases', 'id')) AS pid
         FROM ledger_accounts a JOIN users u ON u.id = a.user_id
        WHERE u.email LIKE 'bench-fan-%%' AND a.kind = 'wallet';
  INSERT INTO ledger_transfers (id, kind, idempotency_key)
       SELECT tid, 'purchase', 'purchase:' || pid FROM fund;
  INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
       SELECT tid, wallet, %(fund)s, %(fund)s FROM fund
       UNION ALL SELECT tid, sales, -%(fund)s, NULL FROM fund;
  UPDATE ledger_accounts a SET balance = %(fund)s FROM fund f WHERE a.id = f.wallet;
  INSERT INTO purchases (id, user_id, amount_tokens, amount_cents, provider, status, transfer_id, completed_at)
       SELECT pid, user_id, %(fund)s, %(fund)s, 'demo', 'completed', tid, now() FROM fund;
  -- Call i: fan i with creator i, both present; block 0 counts as paid, so every
  -- round has one block due per call.
  INSERT INTO calls (fan_id, creator_id, rate, block_seconds, status, channel, requested_at, accepted_at,
                     active_since, blocks_charged, total_charged, media_connected_at)
       SELECT f.id, c.id, 60, 30, 'active', 'bench-c-' || f.id, %(t0)s, %(t0)s, %(t0)s, 1, 30, %(t0)s
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

# Every party's page heartbeats (app/calls/signaling.Presence). The score is an hour
# ahead so the setup's one write stays fresh through the run (the sweep counts
# heartbeats newer than 30 s ago); the bench's keys go when its prefix is deleted.
HEARTBEAT_AHEAD = 3600


class Population:
    """One database of `calls` active calls, its app (own Redis prefix) and a connection."""

    def __init__(self, label: str, calls: int, sets: int, base: str, redis: str):
        self.label, self.calls = label, calls
        self.name, self.db_url = create_database(base)
        try:
            self._build(calls, sets, redis)
        except BaseException:
            drop_database(base, self.name)
            raise

    def _build(self, calls: int, sets: int, redis: str) -> None:
        label = self.label
        self.prefix = f"pm-bench-{uuid.uuid4().hex[:8]}:"
        self.redis = redis
        migrate(self.db_url, redis)
        self.conn = psycopg.connect(libpq_url(self.db_url))
        started = time.perf_counter()
        self.conn.execute(SETUP % {"n": sets * calls, "fund": FUND, "t0": f"'{T0.isoformat()}'"})
        self.conn.commit()
        # Statistics, as a running database has them (autovacuum would get there in
        # its own time; without them the planner guesses one row per table and the
        # bulk statement's joins go quadratic).
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")
        self.conn.autocommit = False
        ids = [r[0] for r in self.conn.execute("SELECT id FROM calls ORDER BY id")]
        self.fees = self.conn.execute("SELECT id FROM ledger_accounts WHERE kind = 'platform_fees'").fetchone()[0]
        self.sets = [ids[i * calls:(i + 1) * calls] for i in range(sets)]
        self.app = _app(self.db_url, redis, self.prefix)
        with self.app.app_context():
            from app.redis_client import get_redis
            pipe = get_redis().pipeline(transaction=False)
            beat = time.time() + HEARTBEAT_AHEAD
            for call_id in ids:
                for party in ("fan", "creator"):
                    pipe.zadd(f"{self.prefix}call-presence:{call_id}:{party}", {"bench": beat})
                if len(pipe) >= 10_000:
                    pipe.execute()
            pipe.execute()
        self.ticks: list[float] = []
        self.sweeps: list[float] = []
        self.cpu: list[float] = []
        print(f"{label}: database {self.name}, {sets} × {calls:,} active calls set up in "
              f"{time.perf_counter() - started:.1f} s", flush=True)

    def park(self, ids, parked: bool) -> None:
        """Take a set out of the tick's sight or put it back (active since T0). Parked
        calls count as ended, so neither the meter nor the presence sweep reads them."""
        if parked:
            self.conn.execute("UPDATE calls SET status = 'ended', active_since = NULL WHERE id = ANY(%s)", (ids,))
        else:
            self.conn.execute("UPDATE calls SET status = 'active', active_since = %s WHERE id = ANY(%s)", (T0, ids))
        self.conn.commit()

    def tick(self, at: datetime, threads, batch):
        """One worker tick at `at`, as `cron.meter_calls` runs it; (result, sweep s, meter s, CPU s)."""
        with self.app.app_context():
            from app.calls import service
            from app.calls.signaling import sweep_stale_presence
            from app.extensions import db
            self.app.extensions["clock"] = lambda: at
            t, cpu = time.perf_counter(), time.process_time()
            reported = sweep_stale_presence()
            sweep_s = time.perf_counter() - t
            try:
                result = service.meter(threads=threads, **({"batch": batch} if batch else {}))
            finally:
                db.session.remove()
            meter_s, cpu_s = time.perf_counter() - t - sweep_s, time.process_time() - cpu
        assert not reported, f"the sweep reported present parties gone: {reported[:5]}"
        return result, sweep_s, meter_s, cpu_s

    def finish(self, base: str, rounds: int) -> tuple[dict, list]:
        """(blocks per call → number of calls, ledger violations); drops the database and the Redis keys."""
        with self.app.app_context():
            from app.ledger import verify
            violations = verify()
        self.forget_keys()
        counts = dict(self.conn.execute("SELECT blocks_charged, count(*) FROM calls GROUP BY 1").fetchall())
        self.conn.close()
        drop_database(base, self.name)
        return counts, violations


    def forget_keys(self) -> None:
        """Delete this run's Redis keys (heartbeats, earnings claims: its own prefix) and
        the earnings-refresh jobs its ticks queued (no worker runs them)."""
        with self.app.app_context():
            from rq import Queue

            from app.jobs import queue_name
            from app.redis_client import get_redis
            redis = get_redis()
            Queue(queue_name(), connection=redis).delete(delete_jobs=True)
            for keys in _chunks(list(redis.scan_iter(match=self.prefix + "*", count=10_000)), 10_000):
                redis.delete(*keys)


def _chunks(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _app(db_url: str, redis: str, prefix: str):
    from app import create_app
    from app.config import Config
    return create_app(Config.from_env({"APP_ENV": "test", "DATABASE_URL": db_url, "REDIS_URL": redis,
                                       "REDIS_PREFIX": prefix, "SECRET_KEY": "bench",
                                       "INSTANCE_DIR": str(BENCH_INSTANCE)}))


def _sizes(text: str) -> tuple[int, int]:
    sizes = [int(s.replace("_", "")) for s in text.split(",")]
    if len(sizes) != 2 or not 0 < sizes[0] < sizes[1]:
        raise argparse.ArgumentTypeError("two sizes, small then large: e.g. 10000,100000")
    return sizes[0], sizes[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=_sizes, default=(10_000, 100_000),
                        help="the two sizes, small,large (default 10000,100000)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="METER_THREADS (default: the app's, 2)")
    parser.add_argument("--batch", type=int, default=None, help="calls per batch (default: the meter's)")
    args = parser.parse_args()
    n_small, n_large = args.calls

    base = server_url()
    redis, redis_proc = redis_url()
    populations = []
    try:
        small = Population("small", n_small, 2, base, redis)
        populations.append(small)
        large = Population("large", n_large, 1, base, redis)
        populations.append(large)
        print()
        meter_rates, bulk_rates = [], []
        for r in range(args.rounds):
            k = r + 1  # the block due in this round
            at = T0 + timedelta(seconds=BLOCK * k)
            for pop in (small, large) if r % 2 == 0 else (large, small):
                if pop is small:
                    metered, bulked = (0, 1) if r % 2 == 0 else (1, 0)
                    t = time.perf_counter()
                    small.conn.execute(BULK, {"ids": small.sets[bulked], "k": k, "fees": small.fees})
                    small.conn.commit()
                    bulk_s = time.perf_counter() - t
                    bulk_rates.append(n_small / bulk_s)
                    small.park(small.sets[bulked], True)
                    try:
                        result, sweep_s, meter_s, cpu_s = small.tick(at, args.threads, args.batch)
                    finally:
                        small.park(small.sets[bulked], False)
                    meter_rates.append(result.blocks_charged / meter_s)
                    extra = (f"; bulk SQL set {'AB'[bulked]} {bulk_s:5.2f} s "
                             f"(meter {meter_rates[-1]:,.0f} vs bulk {bulk_rates[-1]:,.0f} blocks/s)")
                else:
                    result, sweep_s, meter_s, cpu_s = large.tick(at, args.threads, args.batch)
                    extra = ""
                assert result.blocks_charged == pop.calls and not result.calls_ended, result
                pop.ticks.append(sweep_s + meter_s)
                pop.sweeps.append(sweep_s)
                pop.cpu.append(cpu_s)
                print(f"  round {r + 1} (block {k}) {pop.label:5} {pop.calls:7,} calls: tick {pop.ticks[-1]:6.2f} s "
                      f"(sweep {sweep_s:5.2f} + meter {meter_s:6.2f}; Python CPU {cpu_s:5.2f} s){extra}", flush=True)

        # Nothing due: the cost of a tick whatever is due (1 s into the last round's block).
        quiet = {}
        for pop in (small, large):
            result, sweep_s, meter_s, _cpu = pop.tick(T0 + timedelta(seconds=BLOCK * args.rounds + 1),
                                                      args.threads, args.batch)
            assert result.blocks_charged == 0 and not result.calls_ended, result
            quiet[pop.label] = (sweep_s, meter_s)

        checks = {pop.label: pop.finish(base, args.rounds) for pop in (small, large)}
        populations.clear()
    finally:
        for pop in populations:
            pop.forget_keys()
            pop.conn.close()
            drop_database(base, pop.name)
        embedded.stop(redis_proc)

    mean_small, mean_large = statistics.mean(small.ticks), statistics.mean(large.ticks)
    growth = mean_large / mean_small
    worst_large, worst_small = max(large.ticks), max(small.ticks)
    ratio = statistics.mean(meter_rates) / statistics.mean(bulk_rates)
    growth_ok = growth <= TARGET_GROWTH and worst_large <= TARGET_BLOCK_SECONDS
    small_ok = ratio >= TARGET_RATIO and worst_small <= TARGET_SECONDS
    print(f"\ntick at {n_large:,} calls {mean_large:.2f} s (mean; slowest {worst_large:.2f} s of the "
          f"{TARGET_BLOCK_SECONDS:.0f} s block), at {n_small:,} {mean_small:.2f} s: growth {growth:.2f}× for "
          f"{n_large / n_small:.0f}× the calls (target ≤ {TARGET_GROWTH:.0f}×)  {'PASS' if growth_ok else 'FAIL'}")
    print(f"at {n_small:,} calls: meter {statistics.mean(meter_rates):,.0f} blocks/s vs bulk SQL "
          f"{statistics.mean(bulk_rates):,.0f}: ratio {ratio:.2f} (target ≥ {TARGET_RATIO}); slowest tick "
          f"{worst_small:.2f} s (target ≤ {TARGET_SECONDS:.0f} s)  {'PASS' if small_ok else 'FAIL'}")
    print("quiet tick (nothing due): " + ", ".join(
        f"{label} {s + m:.2f} s (sweep {s:.2f} + meter {m:.2f})" for label, (s, m) in quiet.items()))
    books_ok = True
    for pop in (small, large):
        counts, violations = checks[pop.label]
        expected = {args.rounds + 1: pop.calls * len(pop.sets)}
        books_ok &= counts == expected and not violations
        print(f"books ({pop.label}): blocks per call {counts} (expected {expected}); ledger verify: "
              f"{'clean' if not violations else [str(v) for v in violations[:3]]}")
    return 0 if growth_ok and small_ok and books_ok else 1


if __name__ == "__main__":
    sys.exit(main())
