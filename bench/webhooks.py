"""Stripe webhooks over HTTP against the production server, versus an authenticated no-op.

What is measured
----------------
The production server (gunicorn with gunicorn.conf.py, gevent) on a fresh
database, with PAYMENTS_PROVIDER=stripe. `--events` pending Checkout purchases
are seeded for `--fans` fans; then `--threads` client threads, each with its own
keep-alive connection, POST a signed `checkout.session.completed` event for
each purchase to `/webhooks/stripe` as fast as they can: Stripe's signature
scheme (HMAC-SHA256 over "<t>.<payload>", signed at send time), and **every
event delivered twice** — the two deliveries sit next to each other in the
work queue, so they usually race each other on two threads. Each first
delivery is the whole webhook path: signature check, the event claimed once
(`stripe_events`), the purchase locked, the ledger credit (`purchase:<id>`,
debt first), the commit, and the live push to the buyer's `/ws/me`; each
second one is a replay answered "duplicate". The baseline, in the same run on
the same server, is the same threads calling `GET /api/auth/me` — bearer
authentication and a JSON answer, no money.

Reported: webhook deliveries handled per second (every one a signed event
POSTed by "Stripe": half of them credit, half are replays), the purchases
credited per second (half that), the no-op's requests/s, and both ratios.
Target (issue 15): deliveries/s ≥ 0.3× the no-op rate, request for request;
the credited-events ratio, a credit costing two requests, is printed beside
it. Rounds alternate (no-op, webhooks, webhooks, no-op, …) so drift hits both
alike. Afterwards the books are checked: every event credited
exactly once (0 doubled credits), each fan's wallet equal to their credited
purchases, every duplicate answered as one, and `ledger.verify()` clean.

Usage::

    .venv/bin/python bench/webhooks.py [--threads 32] [--fans 64] [--seconds 12] [--rounds 4] [--events 60000]
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402

from _common import WebServer, fresh_services, libpq_url, register, verify  # noqa: E402

TARGET = 0.3
SECRET = "whsec_bench"
TOKENS, CENTS = 100, 100  # each purchase: 100 tokens for $1.00 (TOKEN_PRICE_CENTS=1)
STRIPE_ENV = {"PAYMENTS_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": SECRET,
              # Never called while measuring: purchases are seeded, webhooks call nobody.
              "STRIPE_API_BASE": "http://127.0.0.1:9"}


def seed_purchases(db_url: str, fan_ids: list[int], count: int) -> list[int]:
    """`count` pending Stripe purchases spread over the fans, as `purchase_tokens`
    leaves them after Checkout started (session id cs_bench_<id>); their ids."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        ids = [row[0] for row in conn.execute(
            "INSERT INTO purchases (user_id, amount_tokens, amount_cents, provider, status, currency, checkout_url) "
            "SELECT (%s::bigint[])[1 + i %% cardinality(%s::bigint[])], %s, %s, 'stripe', 'pending', 'usd', "
            "'https://checkout.stripe.com/bench' FROM generate_series(0, %s - 1) AS i RETURNING id",
            (fan_ids, fan_ids, TOKENS, CENTS, count))]
        conn.execute("UPDATE purchases SET provider_ref = 'cs_bench_' || id WHERE provider_ref IS NULL")
    return ids


def event(purchase_id: int) -> bytes:
    """The `checkout.session.completed` event Stripe sends once the buyer paid."""
    return json.dumps({
        "id": f"evt_bench_{purchase_id}", "object": "event", "type": "checkout.session.completed",
        "data": {"object": {
            "id": f"cs_bench_{purchase_id}", "object": "checkout.session", "client_reference_id": str(purchase_id),
            "metadata": {"purchase_id": str(purchase_id)}, "amount_total": CENTS, "currency": "usd",
            "payment_status": "paid", "status": "complete", "payment_intent": f"pi_bench_{purchase_id}"}},
    }).encode()


def signed(payload: bytes) -> str:
    t = int(time.time())
    return f"t={t},v1={hmac.new(SECRET.encode(), f'{t}.'.encode() + payload, hashlib.sha256).hexdigest()}"


def worker(port: int, token: str, mode: str, work: queue.SimpleQueue, stop: threading.Event, counts: list, i: int,
           answers: dict, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        while not stop.is_set():
            if mode == "webhooks":
                try:
                    purchase_id = work.get_nowait()
                except queue.Empty:
                    raise RuntimeError("ran out of seeded events: raise --events") from None
                payload = event(purchase_id)
                conn.request("POST", "/webhooks/stripe", body=payload,
                             headers={"Content-Type": "application/json", "Stripe-Signature": signed(payload)})
            else:
                conn.request("GET", "/api/auth/me", headers=auth)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{mode}: HTTP {resp.status} {body[:200]!r}")
            if mode == "webhooks":
                answer = json.loads(body)
                key = "duplicate" if answer.get("duplicate") else answer.get("outcome")
                answers[key] = answers.get(key, 0) + 1  # one dict per thread: no lock needed
            counts[i] += 1
    except Exception as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(repr(exc))
    finally:
        conn.close()


def timed(server, token: str, threads: int, mode: str, seconds: float, work: queue.SimpleQueue, answers: list,
          warmup: float = 1.0) -> tuple[float, int]:
    stop, errors = threading.Event(), []
    counts = [0] * threads
    mine = [{} for _ in range(threads)]
    pool = [threading.Thread(target=worker, args=(server.port, token, mode, work, stop, counts, i, mine[i], errors),
                             daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    time.sleep(warmup)
    n0, t0, s0 = sum(counts), time.perf_counter(), server.cpu_seconds()
    time.sleep(seconds)
    n1, t1, s1 = sum(counts), time.perf_counter(), server.cpu_seconds()
    print(f"      web CPU per request {(s1 - s0) / max(n1 - n0, 1) * 1000:.2f} ms, {(s1 - s0) / (t1 - t0):.2f} cores")
    stop.set()
    for t in pool:
        t.join()
    if errors:
        raise RuntimeError(f"{mode} run failed: {errors[:3]}")
    answers.extend(mine)
    return (n1 - n0) / (t1 - t0), sum(counts)


def books(db_url: str) -> dict:
    """What the database says after the run."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        one = lambda sql: conn.execute(sql).fetchone()  # noqa: E731
        return {
            "credited": one("SELECT count(*) FROM purchases WHERE status = 'completed'")[0],
            "credit transfers": one("SELECT count(*) FROM ledger_transfers WHERE kind = 'purchase'")[0],
            "doubled": one("SELECT count(*) FROM (SELECT idempotency_key FROM ledger_transfers WHERE kind = 'purchase' "
                           "GROUP BY idempotency_key HAVING count(*) > 1) d")[0],
            "wallets off": one(
                "SELECT count(*) FROM ledger_accounts a LEFT JOIN (SELECT user_id, sum(amount_tokens) AS t FROM purchases "
                "WHERE status = 'completed' GROUP BY user_id) p ON p.user_id = a.user_id "
                "WHERE a.kind = 'wallet' AND a.balance <> coalesce(p.t, 0)")[0],
            "events recorded": one("SELECT count(*) FROM stripe_events WHERE outcome = 'credited'")[0],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--fans", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per mode (split over rounds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--events", type=int, default=60_000, help="pending purchases seeded (each delivered twice)")
    args = parser.parse_args()

    with fresh_services() as (name, db_url, redis):
        worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
        server = WebServer(db_url, redis, worker_class, STRIPE_ENV, log_path="/tmp/pm-bench-webhooks.log")
        try:
            fans = [register(server.base, "fan", f"Fan {i}") for i in range(args.fans)]
            ids = seed_purchases(db_url, [f["user"]["id"] for f in fans], args.events)
            work: queue.SimpleQueue = queue.SimpleQueue()
            for purchase_id in ids:
                work.put(purchase_id)
                work.put(purchase_id)  # Stripe delivering it again, right behind the first
            print(f"database {name}; {args.events:,} pending purchases of {args.fans} fans; {args.threads} threads; "
                  f"gunicorn {worker_class} (gunicorn.conf.py)\n")
            rates = {"no-op": [], "webhooks": []}
            answers: list[dict] = []
            deliveries = 0
            per_run = args.seconds / args.rounds
            token = fans[0]["token"]
            for r in range(args.rounds):
                for mode in (["no-op", "webhooks"] if r % 2 == 0 else ["webhooks", "no-op"]):
                    rate, total = timed(server, token, args.threads, mode, per_run, work, answers)
                    rates[mode].append(rate)
                    deliveries += total if mode == "webhooks" else 0
                    print(f"  round {r + 1}  {mode:<8} {rate:7.0f} req/s", flush=True)
            noop, hooks = (sum(v) / len(v) for v in (rates["no-op"], rates["webhooks"]))
            events = hooks / 2  # two deliveries per credited event
            ratio_events, ratio_deliveries = events / noop, hooks / noop
            print(f"\nno-op {noop:.0f} req/s; webhooks {hooks:.0f} deliveries/s = {events:.0f} events/s credited")
            print(f"deliveries/no-op = {ratio_deliveries:.2f} (target ≥ {TARGET})  "
                  f"{'PASS' if ratio_deliveries >= TARGET else 'FAIL'};  credited events/no-op = {ratio_events:.2f}")

            seen: dict = {}
            for a in answers:
                for k, v in a.items():
                    seen[k] = seen.get(k, 0) + v
            found = books(db_url)
            violations = verify(db_url, redis)
            # Every event reached the server twice, except maybe the last one or two per thread
            # (a round stops between an event's two deliveries): credited once each, replays answered.
            ok = (found["doubled"] == 0 and found["wallets off"] == 0 and not violations
                  and found["credited"] == found["credit transfers"] == found["events recorded"] == seen.get("credited")
                  and seen.get("credited", 0) + seen.get("duplicate", 0) == deliveries
                  and set(seen) <= {"credited", "duplicate"})
            print(f"books: {deliveries:,} deliveries answered {seen}; {found['credited']:,} purchases credited by "
                  f"{found['credit transfers']:,} transfers; doubled credits {found['doubled']}; wallets off "
                  f"{found['wallets off']}; ledger verify: {'clean' if not violations else violations[:3]}")
            return 0 if ratio_deliveries >= TARGET and ok else 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
