"""Ledger throughput benchmark: app.ledger vs. the same transaction in raw SQL.

What is measured
----------------
Tip-like transfers, the ledger's hottest write path: N threads, each thread a
different fan with a big wallet, every transfer moving ``amount`` tokens from
that fan's wallet to ONE hot creator's ``earnings`` account (80 %) and the
``platform_fees`` account (20 %), split with ``app.ledger.split``. One
transfer = one committed database transaction with three entries.

Two implementations run against the same freshly migrated database:

* **ledger** - the real code path: ``ledger.transfer(...)`` then
  ``db.session.commit()``, each thread inside its own Flask app context
  (so its own scoped ``db.session`` and a connection from the app's pool).
* **raw SQL** - the minimum the same transaction needs, written directly with
  psycopg 3 (no SQLAlchemy), one connection per thread: a conditional
  ``UPDATE ... WHERE balance >= n RETURNING balance`` on the wallet, an
  ``INSERT INTO ledger_transfers ... RETURNING id``, one INSERT of the three
  entries, ``COMMIT``.

Both go through the database's own rules (deferred "entries sum to zero"
trigger, append-only triggers, CHECKs), so the difference between them is the
cost the ledger module adds on top of the unavoidable work: Python
(SQLAlchemy, Flask, validation) and any extra round trips.

Why
---
The ledger's design promises that hot accounts never become a bottleneck:
credits to a creator's earnings or to platform fees only append entries and
never lock a shared row, so throughput should scale with concurrency instead
of serialising on one row. The targets checked at the end:

* ledger >= 0.6 x raw SQL at each thread count (the abstraction costs at most
  40 %), and
* ledger throughput at 32 threads is not below that at 8 (no hot-row
  serialisation: more concurrent fans must not make everybody slower).

The machine may be small and shared, so absolute figures drift between runs;
what matters is the ratio within one run. To keep it fair each
implementation gets the same measured time per thread count (``--seconds``,
split into ``--rounds`` runs, each after an unmeasured ``--warmup``). Rounds
are the outer loop; inside each, the thread counts and the implementations
alternate (ABBA), so slow drift (other load, tables and indexes growing)
hits every cell alike instead of penalising whatever runs last. Raw SQL's own
32/8 ratio is printed beside the ledger's: it shows what the machine alone
does with more threads. Each run also
prints this process's CPU time per transfer: the Python side of both
implementations shares one GIL, so a path that needs much more client CPU per
transfer stops scaling once that one core is busy.

At the end ``app.ledger.verify()`` re-checks every invariant over everything
both implementations wrote; the books must balance.

Database: ``DATABASE_URL`` if set, else the embedded PostgreSQL under
``instance/bench-services``. A brand-new ``pm_bench_<random>`` database is
created, migrated with the real Alembic migrations, and dropped at the end.

Usage::

    .venv/bin/python bench/ledger.py [--seconds 12] [--threads 8,32] [--rounds 4]
                                     [--warmup 1.5] [--amount 10] [--fund 1000000]
                                     [--profile]

``--profile`` adds a cProfile of a single-threaded ledger loop. Exit status:
0 all targets met and books clean, 1 a throughput target missed, 2 the books
do not balance.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from _common import BENCH_INSTANCE, create_database, drop_database, libpq_url, server_url  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app import create_app, ledger  # noqa: E402
from app.config import Config  # noqa: E402
from app.extensions import db  # noqa: E402
TARGET_RATIO = 0.6          # ledger must reach this fraction of raw SQL throughput
MAX_PURCHASE = 100_000      # app limit per purchase_tokens call
KIND = "tip"                # ledger_transfers.kind used by the benchmark

# The raw-SQL transaction, statement by statement (psycopg placeholders).
RAW_DEBIT = ("UPDATE ledger_accounts SET balance = balance - %s "
             "WHERE id = %s AND balance >= %s RETURNING balance")
RAW_TRANSFER = ("INSERT INTO ledger_transfers (kind, idempotency_key, metadata) "
                "VALUES (%s, %s, %s::jsonb) RETURNING id")
RAW_ENTRIES = ("INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after) "
               "VALUES (%s, %s, %s, %s), (%s, %s, %s, NULL), (%s, %s, %s, NULL)")


def make_app(db_url: str):
    """The real app on the bench database (Redis is configured but never used)."""
    cfg = Config.from_env(
        {"APP_ENV": "test", "DATABASE_URL": db_url,
         "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
         "SECRET_KEY": "bench-secret-key", "INSTANCE_DIR": str(BENCH_INSTANCE)},
        PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
        RATELIMIT_ENABLED=False,
        # One pooled connection per thread at the largest thread count, and no
        # overflow connections being opened and closed during a run.
        DB_POOL_SIZE=64, DB_MAX_OVERFLOW=0,
    )
    return create_app(cfg)


# ---- fixtures: one hot creator, one funded fan per thread --------------------

@dataclass(frozen=True)
class Parties:
    fan_wallets: list            # ledger.Account per thread (cached)
    earnings: ledger.Account     # the hot creator's earnings account (derived)
    fees: ledger.Account         # platform_fees (derived)
    creator_id: int
    fan_ids: list
    share_percent: int


def make_parties(app, n_fans: int, tokens_per_fan: int) -> Parties:
    """Register a creator and `n_fans` fans, funding each through real purchases."""
    from app.auth import service as auth
    from app.wallet import service as wallet

    with app.app_context():
        tag = uuid.uuid4().hex[:8]
        creator = auth.register(f"creator-{tag}@example.com", "bench-password-1", "Hot Creator", "creator")
        earnings = ledger.account_for(creator.id, "earnings")
        fees = ledger.system_account("platform_fees")
        wallets, fan_ids = [], []
        for i in range(n_fans):
            fan = auth.register(f"fan{i}-{tag}@example.com", "bench-password-1", f"Fan {i}", "fan")
            remaining = tokens_per_fan
            while remaining > 0:
                chunk = min(remaining, MAX_PURCHASE)
                wallet.purchase_tokens(fan, chunk, f"bench-seed-{uuid.uuid4()}")
                remaining -= chunk
            wallets.append(ledger.account_for(fan.id, "wallet"))
            fan_ids.append(fan.id)
        parties = Parties(wallets, earnings, fees, creator.id, fan_ids, app.config["CREATOR_SHARE_PERCENT"])
        db.session.remove()
    return parties


# ---- the two implementations ---------------------------------------------------
#
# Each is a worker function run by one thread: set up (app context / own
# connection), wait on the barrier, then commit transfers until `stop` is
# set, counting each commit in counts[i]. Failures are recorded, not hidden.

@dataclass
class Run:
    """Shared state of one timed run. Each thread only increments its own
    counts[i], so no lock is needed; the main thread just sums them."""
    threads: int
    barrier: threading.Barrier
    stop: threading.Event = field(default_factory=threading.Event)
    counts: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def __post_init__(self):
        self.counts = [0] * self.threads


def ledger_worker(app, parties: Parties, amount: int, run: Run, i: int) -> None:
    wallet = parties.fan_wallets[i]
    meta = {"creatorId": parties.creator_id, "fanId": parties.fan_ids[i], "bench": True}
    with app.app_context():
        try:
            run.barrier.wait()
            while not run.stop.is_set():
                to_creator, to_platform = ledger.split(amount)
                ledger.transfer(KIND, f"bench:{uuid.uuid4()}", [
                    ledger.Leg(wallet, -amount),
                    ledger.Leg(parties.earnings, to_creator),
                    ledger.Leg(parties.fees, to_platform),
                ], meta)
                db.session.commit()
                run.counts[i] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            db.session.rollback()
            run.errors.append(f"ledger thread {i}: {exc!r}")
            run.barrier.abort()
        finally:
            db.session.remove()


def raw_worker(conninfo: str, parties: Parties, amount: int, run: Run, i: int) -> None:
    wallet_id = parties.fan_wallets[i].id
    earnings_id, fees_id = parties.earnings.id, parties.fees.id
    meta = json.dumps({"creatorId": parties.creator_id, "fanId": parties.fan_ids[i], "bench": True})
    try:
        # autocommit off: psycopg opens the transaction (BEGIN) at the first
        # statement and conn.commit() ends it - one transaction per transfer.
        with psycopg.connect(conninfo) as conn:
            cur = conn.cursor()
            run.barrier.wait()
            while not run.stop.is_set():
                to_creator, to_platform = ledger.split(amount, parties.share_percent)
                cur.execute(RAW_DEBIT, (amount, wallet_id, amount))
                row = cur.fetchone()
                if row is None:
                    conn.rollback()
                    raise RuntimeError(f"wallet {wallet_id} ran out of tokens; raise --fund")
                cur.execute(RAW_TRANSFER, (KIND, f"bench:{uuid.uuid4()}", meta))
                (tid,) = cur.fetchone()
                cur.execute(RAW_ENTRIES, (tid, wallet_id, -amount, row[0],
                                          tid, earnings_id, to_creator,
                                          tid, fees_id, to_platform))
                conn.commit()
                run.counts[i] += 1
    except Exception as exc:  # noqa: BLE001
        run.errors.append(f"raw thread {i}: {exc!r}")
        run.barrier.abort()


# ---- timing ---------------------------------------------------------------------

@dataclass
class Result:
    rate: float        # transfers/s committed in the measured window
    cpu_us: float      # this process's CPU time per transfer in the window (all threads)
    total: int         # transfers committed including warm-up and tail


def timed_run(name: str, target, args: tuple, threads: int, warmup: float, seconds: float) -> Result:
    """Run `threads` workers; measure commits in a `seconds` window after `warmup`.

    Client CPU per transfer is reported too: the Python side of both
    implementations shares one GIL, so it shows which side can saturate.
    """
    run = Run(threads, threading.Barrier(threads + 1))
    workers = [threading.Thread(target=target, args=(*args, run, i), name=f"{name}-{i}", daemon=True)
               for i in range(threads)]
    for w in workers:
        w.start()
    try:
        run.barrier.wait(timeout=60)  # every worker is connected and ready
    except threading.BrokenBarrierError:
        pass
    time.sleep(warmup)                # connections warm, statements prepared
    start_n, start_t, start_cpu = sum(run.counts), time.perf_counter(), time.process_time()
    time.sleep(seconds)
    end_n, end_t, end_cpu = sum(run.counts), time.perf_counter(), time.process_time()
    run.stop.set()
    for w in workers:
        w.join()
    if run.errors:
        raise RuntimeError(f"{name} run failed:\n  " + "\n  ".join(run.errors[:5]))
    done = max(end_n - start_n, 1)
    return Result(done / (end_t - start_t), (end_cpu - start_cpu) / done * 1e6, sum(run.counts))


def profile_ledger(app, parties: Parties, amount: int, n: int = 3000) -> int:
    """cProfile one thread doing ~`n` ledger transfers; prints where the time
    goes and returns how many transfers it committed."""
    import cProfile
    import pstats

    run = Run(1, threading.Barrier(1))

    def stop_after_n():  # the worker loops until `stop`; end it after ~n commits
        while run.counts[0] < n and not run.errors:
            time.sleep(0.005)
        run.stop.set()

    threading.Thread(target=stop_after_n, daemon=True).start()
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    ledger_worker(app, parties, amount, run, 0)  # the benchmark's own loop, in this thread
    profiler.disable()
    elapsed = time.perf_counter() - t0
    if run.errors:
        raise RuntimeError(run.errors[0])
    print(f"\n--- cProfile: 1 thread, {run.counts[0]} ledger transfers in {elapsed:.2f} s "
          f"({run.counts[0] / elapsed:.0f}/s, profiler overhead included) ---")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(20)
    return run.counts[0]


# ---- main ---------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0,
                        help="measured seconds per implementation per thread count (split over rounds)")
    parser.add_argument("--threads", default="8,32", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds; each runs every implementation at every thread count, in ABBA order")
    parser.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds at the start of each run")
    parser.add_argument("--amount", type=int, default=10, help="tokens per transfer")
    parser.add_argument("--fund", type=int, default=1_000_000, help="tokens bought for each fan")
    parser.add_argument("--profile", action="store_true", help="also cProfile a single-thread ledger loop")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    per_run = args.seconds / args.rounds

    base = server_url()
    name, db_url = create_database(base)
    where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"embedded ({BENCH_INSTANCE})"
    print(f"database: {name} on {where}")
    app = None
    exit_code = 0
    try:
        from flask_migrate import upgrade

        app = make_app(db_url)
        with app.app_context():
            upgrade()
            server_version = db.session.execute(text("SHOW server_version")).scalar_one()
            db.session.remove()
        parties = make_parties(app, max(thread_counts), args.fund)
        print(f"PostgreSQL {server_version}; {max(thread_counts)} fans x {args.fund:,} tokens; "
              f"{args.amount} tokens/transfer ({parties.share_percent}% creator); "
              f"{args.seconds:g} s measured per implementation per thread count "
              f"({args.rounds} x {per_run:g} s runs, {args.warmup:g} s warm-up each)\n")

        impls = {
            "ledger": (ledger_worker, (app, parties, args.amount)),
            "raw SQL": (raw_worker, (libpq_url(db_url), parties, args.amount)),
        }
        committed = {"ledger": 0, "raw SQL": 0}
        rates = {t: {"ledger": [], "raw SQL": []} for t in thread_counts}
        # Rounds are the outer loop and both the thread counts and the
        # implementations alternate inside each round (ABBA), so drift over the
        # run (tables and indexes growing, other load) is shared by every cell
        # instead of penalising whichever thread count runs last.
        for r in range(args.rounds):
            counts = thread_counts if r % 2 == 0 else list(reversed(thread_counts))
            for ti, threads in enumerate(counts):
                order = ["ledger", "raw SQL"]
                if (ti + r) % 2:
                    order.reverse()
                for impl in order:
                    target, targs = impls[impl]
                    res = timed_run(impl, target, targs, threads, args.warmup, per_run)
                    rates[threads][impl].append(res.rate)
                    committed[impl] += res.total
                    print(f"  round {r + 1}  {threads:>2} threads  {impl:<8} {res.rate:6.0f} transfers/s"
                          f"   (client CPU {res.cpu_us:4.0f} us/transfer)", flush=True)
        print()
        results: dict[int, dict[str, float]] = {}
        for threads in thread_counts:
            # Mean rate over equal-length runs = total transfers / total time.
            mean = results[threads] = {impl: sum(v) / len(v) for impl, v in rates[threads].items()}
            print(f"{threads:>2} threads: ledger {mean['ledger']:.0f}/s, raw SQL {mean['raw SQL']:.0f}/s, "
                  f"ledger/raw = {mean['ledger'] / mean['raw SQL']:.2f}", flush=True)
        print()

        if args.profile:
            committed["ledger"] += profile_ledger(app, parties, args.amount)

        # ---- verdict ----
        print("verdict")
        ok = True
        for threads, mean in results.items():
            ratio = mean["ledger"] / mean["raw SQL"]
            passed = ratio >= TARGET_RATIO
            ok &= passed
            print(f"  {threads:>2} threads: ledger/raw = {ratio:.2f} (target >= {TARGET_RATIO})"
                  f"  {'PASS' if passed else 'FAIL'}")
        if len(thread_counts) >= 2:
            lo, hi = min(thread_counts), max(thread_counts)
            scale = results[hi]["ledger"] / results[lo]["ledger"]
            passed = scale >= 1.0
            ok &= passed
            print(f"  ledger {hi}/{lo} threads = {scale:.2f} ({results[hi]['ledger']:.0f}/s vs "
                  f"{results[lo]['ledger']:.0f}/s; target >= 1.00)  {'PASS' if passed else 'FAIL'}")
            raw_scale = results[hi]["raw SQL"] / results[lo]["raw SQL"]
            print(f"  (for reference, raw SQL {hi}/{lo} threads = {raw_scale:.2f})")
        if not ok:
            exit_code = 1

        # ---- the books ----
        with app.app_context():
            violations = ledger.verify()
            in_db = db.session.execute(text("SELECT count(*) FROM ledger_transfers WHERE kind = :k"),
                                       {"k": KIND}).scalar_one()
            db.session.remove()
        expected = committed["ledger"] + committed["raw SQL"]
        print(f"\nbooks: {in_db:,} {KIND} transfers in the database "
              f"({committed['ledger']:,} ledger + {committed['raw SQL']:,} raw SQL committed)")
        if violations:
            exit_code = 2
            print(f"ledger.verify(): {len(violations)} violation(s) - the books do NOT balance")
            for v in violations[:20]:
                print(f"  {v}")
        else:
            print("ledger.verify(): clean - the books balance")
        if in_db != expected:
            exit_code = 2
            print(f"  count mismatch: expected {expected:,}")
    finally:
        if app is not None:
            with app.app_context():
                db.engine.dispose()
        drop_database(base, name)
        print(f"dropped {name}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
