"""Tips over HTTP against the production server, versus an authenticated no-op.

What is measured
----------------
The production server (gunicorn with gunicorn.conf.py, gevent) on a fresh
database. `--fans` client threads (default 32), each a different funded fan
with its own keep-alive HTTP connection, all tip ONE creator
(`POST /api/tips/send`, unique Idempotency-Key each) as fast as they can. The
baseline, in the same run on the same server, is the same threads calling
`GET /api/auth/me` — bearer authentication and a JSON answer, no money.
The ratio tips/no-op says what the tip itself costs (validation, idempotency
claim, the ledger transfer, the commit, the realtime publish).

Rounds alternate (no-op, tips, tips, no-op, …) so drift hits both alike.
Target (issue 3): tips ≥ 0.4× the no-op rate. Afterwards the ledger is
verified and the creator's earnings checked against the tips counted.

GUNICORN_WORKER_CLASS=gthread measures the other worker class.

Room mode (``--room``, issue 18)
--------------------------------
Adds a third mode, "room": the same tips, each carrying `context.streamId` of
the creator's live public stream, which has an active goal (set through
`POST /api/streams/:id/goal`) and a leaderboard. So every tip also claims the
stream's room refresh in Redis (`app.goals.pushes.room_changed`) and a real
`worker.py` process, started for the run, runs the coalesced room jobs (goal
progress and top 10 read from PostgreSQL, published to the stream's channel
and the OBS goal channel) on the same machine while the tips are measured. It
reports room/stream (target ≥ 0.9: the room features must not slow tipping)
next to tips/no-op. "stream" is the same tips into a second live stream of the
creator without them: no goal, and its room claim held by the bench for the
whole run, so no refresh job is ever queued for it (it still pays the claim's
one `SET NX`, ~0.1 ms, which room mode pays too). room/tips (tips with no
stream at all) is printed for information. The worker runs in every mode (it
also refreshes the earnings pill). Afterwards the goal's progress and the
leaderboard must equal the room tips counted.

Usage::

    .venv/bin/python bench/tips_http.py [--fans 32] [--seconds 12] [--rounds 4] [--room]
"""
from __future__ import annotations

import argparse
import os
import http.client
import subprocess
import json
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WebServer, api, fresh_services, fund, register, verify  # noqa: E402


TARGET = 0.4
ROOM_TARGET = 0.9  # room tips / plain tips (issue 18)
TIP = 10  # tokens per tip: creator 8, platform 2


def worker(port: int, token: str, creator_id: int, mode: str, stop: threading.Event, counts: list, i: int,
           errors: list, stream_id: dict | None = None) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    auth = {"Authorization": f"Bearer {token}"}
    target = stream_id.get(mode) if stream_id else None
    body = json.dumps({"toCreatorId": creator_id, "amountTokens": TIP, "message": "bench",
                       **({"context": {"streamId": target}} if target else {})})
    try:
        while not stop.is_set():
            if mode in ("tips", "stream", "room"):
                conn.request("POST", "/api/tips/send", body=body,
                             headers={**auth, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})
                expected = 201
            else:
                conn.request("GET", "/api/auth/me", headers=auth)
                expected = 200
            resp = conn.getresponse()
            resp.read()
            if resp.status != expected:
                raise RuntimeError(f"{mode}: HTTP {resp.status}")
            counts[i] += 1
    except Exception as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(repr(exc))
    finally:
        conn.close()


def timed(port: int, fans: list, creator_id: int, mode: str, seconds: float, warmup: float = 1.0,
          server=None, stream_id: dict | None = None) -> float:
    stop, errors = threading.Event(), []
    counts = [0] * len(fans)
    threads = [threading.Thread(target=worker, args=(port, f["token"], creator_id, mode, stop, counts, i, errors,
                                                     stream_id), daemon=True) for i, f in enumerate(fans)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    n0, t0 = sum(counts), time.perf_counter()
    c0, s0 = time.process_time(), server.cpu_seconds()
    time.sleep(seconds)
    n1, t1 = sum(counts), time.perf_counter()
    wall = t1 - t0
    # Where the time goes: the web tier's CPU per request is what the ratio is made of.
    print(f"      cores: client {(time.process_time() - c0) / wall:.2f}, web {(server.cpu_seconds() - s0) / wall:.2f}; "
          f"web CPU per request {(server.cpu_seconds() - s0) / max(n1 - n0, 1) * 1000:.2f} ms")
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{mode} run failed: {errors[:3]}")
    return (n1 - n0) / (t1 - t0), sum(counts)


class RoomWorker:
    """`python worker.py` on the bench's database and Redis (the production worker): it runs
    the room refresh jobs the tips queue, on this machine, while the tips are measured."""

    def __init__(self, db_url: str, redis: str):
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis, "APP_ENV": "production",
               "SECRET_KEY": "bench-secret-key", "ALLOW_DEMO_PAYMENTS": "1"}
        self.log = open("/tmp/pm-bench-tips-http-worker.log", "w")
        self.proc = subprocess.Popen([sys.executable, "worker.py"], cwd=Path(__file__).resolve().parent.parent,
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        from app import embedded
        embedded.stop(self.proc, timeout=20)
        self.log.close()


def live_stream(base: str, token: str, title: str) -> int:
    _, made = api(base, "POST", "/api/streams/create", {"type": "public", "title": title}, token=token)
    api(base, "POST", f"/api/streams/{made['stream']['id']}/start", token=token)
    return made["stream"]["id"]


def room_claim(redis_url: str, stream_id: int, hold: bool) -> None:
    """Hold (or let go of) the stream's room-refresh claim (app.goals.pushes.claim_key, with
    the server's prefix) for the run: its tips never queue a refresh, as if the stream had
    no room features. Held an hour at most, and let go at the end: a later run's stream of
    the same id (a fresh database) must not find it."""
    from redis import Redis
    key = f"{os.environ.get('REDIS_PREFIX') or 'pm:'}room-push:{stream_id}"
    if hold:
        Redis.from_url(redis_url).set(key, 1, ex=3600)
    else:
        Redis.from_url(redis_url).delete(key)


def room_books(base: str, token: str, stream_id: int, expected: int) -> bool:
    """After the run: the goal's progress and the leaderboard's sum are the room tips' tokens."""
    _, goal = api(base, "GET", f"/api/streams/{stream_id}/goal", token=token)
    _, board = api(base, "GET", f"/api/streams/{stream_id}/leaderboard", token=token)
    progress, board_sum = goal["goal"]["progressTokens"], sum(t["totalTokens"] for t in board["top"])
    print(f"room: goal progress {progress:,}, top-10 sum {board_sum:,} (expected {expected:,} and ≤ that)")
    return progress == expected and board_sum <= expected and (len(board["top"]) < 10 or board_sum > 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fans", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per mode (split over rounds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--room", action="store_true",
                        help="also tip into a live stream with a goal and a leaderboard (room/tips ratio)")
    args = parser.parse_args()

    with fresh_services() as (name, db_url, redis):
        worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
        server = WebServer(db_url, redis, worker_class,
                           # The per-user tip limit (40/s) is not what is measured here.
                           {"TIP_LIMIT_PER_USER": "100000 per second"}, log_path="/tmp/pm-bench-tips-http.log")
        jobs = RoomWorker(db_url, redis) if args.room else None
        stream_id = None
        try:
            creator = register(server.base, "creator", "Hot Creator")
            fans = [register(server.base, "fan", f"Fan {i}") for i in range(args.fans)]
            for f in fans:
                fund(server.base, f["token"], 1_000_000)
            stream_id = None
            if args.room:
                stream_id = {mode: live_stream(server.base, creator["token"], f"Bench {mode}") for mode in ("stream", "room")}
                status, _ = api(server.base, "POST", f"/api/streams/{stream_id['room']}/goal",
                                {"title": "Bench goal", "targetTokens": 10_000_000}, token=creator["token"])
                assert status == 200, status
                room_claim(redis, stream_id["stream"], hold=True)
            print(f"database {name}; {args.fans} fans → one creator; gunicorn {worker_class} (gunicorn.conf.py)"
                  f"{'; room mode: worker.py running, goal + leaderboard on a live stream' if args.room else ''}\n")
            modes = ["no-op", "tips", "stream", "room"] if args.room else ["no-op", "tips"]
            rates = {m: [] for m in modes}
            totals = {m: 0 for m in modes}
            per_run = args.seconds / args.rounds
            for r in range(args.rounds):
                order = modes if r % 2 == 0 else modes[::-1]
                for mode in order:
                    rate, total = timed(server.port, fans, creator["user"]["id"], mode, per_run, server=server,
                                        stream_id=stream_id)
                    rates[mode].append(rate)
                    totals[mode] += total
                    print(f"  round {r + 1}  {mode:<6} {rate:7.0f} req/s", flush=True)
            mean = {m: sum(v) / len(v) for m, v in rates.items()}
            noop, tips = mean["no-op"], mean["tips"]
            ratio = tips / noop
            ok = ratio >= TARGET
            print(f"\nno-op {noop:.0f}/s, tips {tips:.0f}/s, tips/no-op = {ratio:.2f} (target ≥ {TARGET})  "
                  f"{'PASS' if ratio >= TARGET else 'FAIL'}")
            tips_total = totals["tips"] + totals.get("stream", 0) + totals.get("room", 0)
            if args.room:
                room_ratio = mean["room"] / mean["stream"]
                ok = ok and room_ratio >= ROOM_TARGET
                print(f"stream {mean['stream']:.0f}/s, room {mean['room']:.0f}/s, room/stream = {room_ratio:.2f} "
                      f"(target ≥ {ROOM_TARGET})  {'PASS' if room_ratio >= ROOM_TARGET else 'FAIL'}; "
                      f"room/tips = {mean['room'] / tips:.2f}")
                ok = room_books(server.base, creator["token"], stream_id["room"], totals["room"] * TIP) and ok
            _, wallet = api(server.base, "GET", "/api/wallet/me", token=creator["token"])
            expected = tips_total * (TIP * 80 // 100)
            violations = verify(db_url, redis)
            print(f"books: {tips_total:,} tips counted, creator earnings {wallet['earnings']:,} "
                  f"(expected {expected:,}); ledger verify: {'clean' if not violations else violations[:3]}")
            return 0 if ok and wallet["earnings"] == expected and not violations else 1
        finally:
            if jobs:
                jobs.stop()
            if stream_id:
                room_claim(redis, stream_id["stream"], hold=False)
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
