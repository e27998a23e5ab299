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
  (so its own scoped ``db.session`` and a connection from the app's pool,
  sized as in production: ``DB_POOL_SIZE`` 10 + ``DB_MAX_OVERFLOW`` 10).
* **raw SQL** - the minimum the same transaction needs, written directly with
  psycopg 3 (no SQLAlchemy): a conditional
  ``UPDATE ... WHERE balance >= n RETURNING balance`` on the wallet, an
  ``INSERT INTO ledger_transfers ... RETURNING id``, one INSERT of the three
  entries, ``COMMIT``. It gets the same connection budget as the ledger: a
  plain queue of at most 20 psycopg connections, one taken per transfer.

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

Then the cost inside PostgreSQL alone (``--in-db``, the issue's measure): a
``DO`` loop of N ``ledger_post()`` calls against a loop of the raw SQL's three
statements, each run in autocommit (its COMMIT and deferred trigger included),
alternating, median of five; wall time per transfer, and the server process's
CPU time when it runs on this machine (read from /proc). A DO loop is one
transaction, though: its 2,000 updates of one wallet leave 2,000 versions of
that row which nothing can prune until it ends, and each update walks them, so
it drifts up run after run (measured: 185 -> 255 µs over seven runs) in a way no
committed transfer does. So the same is measured as production sends it too:
N/2 transfers from one connection, each its own transaction (``ledger_post()``
then COMMIT against the raw SQL's three statements then COMMIT, as the threads
send them), alternating, median of five; the round trips, COMMIT and triggers
are in it. Informational: the targets are the throughput ratios.

At the end ``app.ledger.verify()`` re-checks every invariant over everything
both implementations wrote; the books must balance.

Database: ``DATABASE_URL`` if set, else the embedded PostgreSQL under
``instance/bench-services``. A brand-new ``pm_bench_<random>`` database is
created, migrated with the real Alembic migrations, and dropped at the end.

Usage::

    .venv/bin/python bench/ledger.py [--seconds 12] [--threads 8,32] [--rounds 4]
                                     [--warmup 1.5] [--amount 10] [--fund 1000000]
                                     [--in-db 2000] [--profile]

``--profile`` adds a cProfile of a single-threaded ledger loop. Exit status:
0 all targets met and books clean, 1 a throughput target missed, 2 the books
do not balance.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
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
    """The real app on the bench database (Redis is configured but never used),
    with production's connection pool (`Config`'s DB_POOL_SIZE and
    DB_MAX_OVERFLOW): at 32 threads, some wait for a connection, as they would
    in a web process."""
    cfg = Config.from_env(
        {"APP_ENV": "test", "DATABASE_URL": db_url,
         "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
         "SECRET_KEY": "bench-secret-key", "INSTANCE_DIR": str(BENCH_INSTANCE)},
        PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
        RATELIMIT_ENABLED=False,
    )
    return create_app(cfg)


class RawPool:
    """The raw SQL side's connections: at most `size` psycopg connections (the
    ledger's pool size plus overflow), opened on demand and reused, one taken per
    transfer. Threads beyond `size` wait, as the ledger's do in its pool."""

    def __init__(self, conninfo: str, size: int):
        self.conninfo, self.size, self.opened = conninfo, size, 0
        self.idle: queue.LifoQueue = queue.LifoQueue()
        self.lock = threading.Lock()

    def get(self) -> psycopg.Connection:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            with self.lock:
                open_one = self.opened < self.size
                self.opened += open_one
            if open_one:
                return psycopg.connect(self.conninfo)
            return self.idle.get()

    def put(self, conn: psycopg.Connection) -> None:
        self.idle.put(conn)

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait().close()


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


def raw_worker(pool: RawPool, parties: Parties, amount: int, run: Run, i: int) -> None:
    wallet_id = parties.fan_wallets[i].id
    earnings_id, fees_id = parties.earnings.id, parties.fees.id
    meta = json.dumps({"creatorId": parties.creator_id, "fanId": parties.fan_ids[i], "bench": True})
    try:
        run.barrier.wait()
        while not run.stop.is_set():
            # autocommit off: psycopg opens the transaction (BEGIN) at the first
            # statement and conn.commit() ends it - one transaction per transfer.
            conn = pool.get()
            try:
                to_creator, to_platform = ledger.split(amount, parties.share_percent)
                cur = conn.cursor()
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
            finally:
                pool.put(conn)
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


# ---- inside PostgreSQL ---------------------------------------------------------

IN_DB_LEDGER = """DO $$ BEGIN FOR i IN 1..{n} LOOP
    PERFORM ledger_post('tip', 'indb:{tag}:' || i, '{{"bench": true}}', ARRAY[{w}, {e}, {f}]::bigint[],
                        ARRAY[-{a}, {c}, {p}]::bigint[]);
END LOOP; END $$"""
IN_DB_RAW = """DO $$ DECLARE b bigint; t bigint; BEGIN FOR i IN 1..{n} LOOP
    UPDATE ledger_accounts SET balance = balance - {a} WHERE id = {w} AND balance >= {a} RETURNING balance INTO b;
    INSERT INTO ledger_transfers (kind, idempotency_key, metadata)
         VALUES ('tip', 'indb:{tag}:' || i, '{{"bench": true}}') RETURNING id INTO t;
    INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
         VALUES (t, {w}, -{a}, b), (t, {e}, {c}, NULL), (t, {f}, {p}, NULL);
END LOOP; END $$"""


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend, when it runs on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_db_cost(conninfo: str, parties: Parties, amount: int, n: int, tries: int = 5) -> dict[str, tuple]:
    """Per transfer inside PostgreSQL: `n` ledger_post() calls in one DO loop
    against `n` times the raw SQL's three statements, on the wallet of the last
    fan (no thread uses it). Autocommit, so each loop's COMMIT and deferred
    trigger count. `tries` alternating runs each, summed up by their median (a
    function whose plans PostgreSQL keeps re-choosing has fast and slow runs):
    (wall µs, backend CPU µs or None) per implementation."""
    to_creator, to_platform = ledger.split(amount, parties.share_percent)
    args = dict(n=n, w=parties.fan_wallets[-1].id, e=parties.earnings.id, f=parties.fees.id, a=amount,
                c=to_creator, p=to_platform)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return _alternate(conn, n, tries, {
            "ledger_post()": lambda c, tag: c.execute(IN_DB_LEDGER.format(tag=tag, **args)),
            "raw SQL": lambda c, tag: c.execute(IN_DB_RAW.format(tag=tag, **args))})


def _alternate(conn, n: int, tries: int, sides: dict) -> dict[str, tuple]:
    """Run each of `sides` ({name: run(conn, tag)}, each doing `n` transfers on
    `conn`) `tries` times, alternating which goes first, so drift hits both alike:
    (median wall µs, median backend CPU µs or None) per transfer, per name."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.commit()
    walls: dict[str, list] = {name: [] for name in sides}
    cpus: dict[str, list] = {name: [] for name in sides}
    for t in range(tries):
        order = list(sides.items())
        for name, side in order if t % 2 == 0 else reversed(order):
            cpu0, t0 = _backend_cpu(pid), time.perf_counter()
            side(conn, uuid.uuid4().hex)
            walls[name].append((time.perf_counter() - t0) / n * 1e6)
            cpu1 = _backend_cpu(pid)
            if cpu0 is not None and cpu1 is not None:
                cpus[name].append((cpu1 - cpu0) / n * 1e6)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]) if cpus[name] else None)
            for name in walls}


# One transfer per transaction, as the threads send them (psycopg opens the transaction).
PER_TX_LEDGER = ("SELECT o_transfer_id, o_created, o_shortfall, o_balances "
                 "FROM ledger_post(%s, %s, %s::jsonb, %s::bigint[], %s::bigint[])")


def per_transaction_cost(conninfo: str, parties: Parties, amount: int, n: int,
                         tries: int = 5) -> dict[str, tuple]:
    """Per transfer as production sends it: `n` transfers from one connection, each its
    own transaction (`ledger_post()` then COMMIT, against the raw SQL's three
    statements then COMMIT), on the wallet of the last fan; `tries` alternating runs
    each, by their median: (wall µs, backend CPU µs or None) per implementation.
    Unlike a DO loop, no row piles up versions inside one transaction."""
    to_creator, to_platform = ledger.split(amount, parties.share_percent)
    w, e, f = parties.fan_wallets[-1].id, parties.earnings.id, parties.fees.id
    accounts, amounts, meta = f"{{{w},{e},{f}}}", f"{{{-amount},{to_creator},{to_platform}}}", '{"bench": true}'

    def ledger_side(conn, tag):
        for i in range(n):
            if conn.execute(PER_TX_LEDGER, (KIND, f"pertx:{tag}:{i}", meta, accounts, amounts)).fetchone()[2]:
                raise RuntimeError(f"wallet {w} ran out of tokens; raise --fund")
            conn.commit()

    def raw_side(conn, tag):
        for i in range(n):
            cur = conn.cursor()
            cur.execute(RAW_DEBIT, (amount, w, amount))
            row = cur.fetchone()
            if row is None:
                raise RuntimeError(f"wallet {w} ran out of tokens; raise --fund")
            cur.execute(RAW_TRANSFER, (KIND, f"pertx:{tag}:{i}", meta))
            (tid,) = cur.fetchone()
            cur.execute(RAW_ENTRIES, (tid, w, -amount, row[0], tid, e, to_creator, tid, f, to_platform))
            conn.commit()

    with psycopg.connect(conninfo) as conn:
        return _alternate(conn, n, tries, {"ledger_post()": ledger_side, "raw SQL": raw_side})


def print_cost(title: str, cost: dict[str, tuple]) -> None:
    print(title)
    for impl, (wall, cpu) in cost.items():
        cpu_text = f", backend CPU {cpu:4.0f} us" if cpu is not None else ""
        print(f"  {impl:<14} {wall:4.0f} us/transfer{cpu_text}")
    (lw, lc), (rw, rc) = cost["ledger_post()"], cost["raw SQL"]
    print(f"  ledger_post()/raw: wall {lw / rw:.2f}"
          + (f", CPU {lc / rc:.2f}" if lc is not None and rc else "") + "\n")


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
    parser.add_argument("--in-db", type=int, default=2000, metavar="N",
                        help="transfers per DO loop for the in-database cost (0: skip)")
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
        # One fan more than threads: the in-database loops use the last one's wallet.
        parties = make_parties(app, max(thread_counts) + 1, args.fund)
        connections = app.config["DB_POOL_SIZE"] + app.config["DB_MAX_OVERFLOW"]
        raw_pool = RawPool(libpq_url(db_url), connections)
        print(f"PostgreSQL {server_version}; {max(thread_counts)} fans x {args.fund:,} tokens; "
              f"{args.amount} tokens/transfer ({parties.share_percent}% creator); "
              f"{args.seconds:g} s measured per implementation per thread count "
              f"({args.rounds} x {per_run:g} s runs, {args.warmup:g} s warm-up each); "
              f"connections: at most {connections} each (pool {app.config['DB_POOL_SIZE']} "
              f"+ overflow {app.config['DB_MAX_OVERFLOW']}, as in production)\n")

        impls = {
            "ledger": (ledger_worker, (app, parties, args.amount)),
            "raw SQL": (raw_worker, (raw_pool, parties, args.amount)),
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
        raw_pool.close()

        per_tx = args.in_db // 2
        needed = 10 * (args.in_db + per_tx) * args.amount
        if args.in_db and args.fund < needed:
            print(f"(in-database loops skipped: --fund must cover {needed:,} tokens)\n")
        elif args.in_db:
            cost = in_db_cost(libpq_url(db_url), parties, args.amount, args.in_db)
            committed["in-db"] = 2 * 5 * args.in_db
            print_cost(f"inside PostgreSQL ({args.in_db:,}-transfer DO loops, median of 5):", cost)
            cost = per_transaction_cost(libpq_url(db_url), parties, args.amount, per_tx)
            committed["in-db"] += 2 * 5 * per_tx
            print_cost(f"one connection, one transaction per transfer ({per_tx:,} transfers, median of 5):", cost)

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
        expected = committed["ledger"] + committed["raw SQL"] + committed.get("in-db", 0)
        print(f"\nbooks: {in_db:,} {KIND} transfers in the database "
              f"({committed['ledger']:,} ledger + {committed['raw SQL']:,} raw SQL committed"
              + (f" + {committed['in-db']:,} in-database and one-connection loops" if "in-db" in committed else "")
              + ")")
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
