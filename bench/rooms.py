"""Rooms benchmark: 100 live rooms × 20 viewers each versus 1 room × 2,000 viewers (issue 19).

What is measured
----------------
The web CPU it takes to deliver one message to one viewer when the audience is spread
over many rooms, against the same audience in one room, at the same deliveries per
second, in the same run.

Three production web instances (gunicorn with gunicorn.conf.py, gevent) on this machine,
one fresh database and Redis. A and B (`--server-workers` processes each, default 2)
hold the viewers; C (`--tipper-workers`, default 1) takes the tips. In the "rooms" case, `--rooms` creators (default 100) are live, each
with `--per-room` viewers (default 20; every room's viewers dealt half to A, half to B),
and every room is tipped `--rate` times a second (default 1: 100 tips/s in all). In the
"one room" case, one live stream has rooms × per-room viewers (2,000, half on A, half on
B) and is tipped `--rate` times a second. Both cases deliver rooms × per-room × rate
messages a second (2,000/s by default). The tips come from `--fans` funded fans in turn,
sent on schedule from several client threads.

Measured per window, on A + B only: web CPU (every gunicorn process of A and B, master
and workers) over the tip window (`--seconds`, plus 1.5 s for the last tips to land)
divided by the deliveries the viewers counted (first arrival of each tip's overlay item
`id="tip-<id>"` on each socket of its room). The tips are sent through C so that their
own request CPU — 100× more tip requests in the rooms case — does not swamp the fan-out
cost: C's CPU is reported apart (cores, ms per tip) and NOT counted. Before each tip
window, the same sockets sit joined and idle for `--idle` seconds: A + B's idle cores
(presence ticks, idle sockets' wake-ups) are printed, and the CPU per delivery with that
idle rate subtracted is printed for information (the target uses the plain figure).

Cases alternate over `--rounds` (one, rooms, rooms, one, …) so drift hits both alike; the
sockets join afresh for every window and leave after it.

Target (issue 19): CPU per delivered message within 1.5× between the two cases (the
larger over the smaller ≤ 1.5), 0 lost; afterwards `ledger.verify()` must be clean. Exit
status 1 on loss, books not balanced, a viewer that never joined, or the ratio failing.

The viewers are bench/fanout.py's `ViewerPool` (epoll reader processes); their CPU is
the client's, not counted either. Latency (tip request sent → overlay item received) is
printed for information. The server, Redis, PostgreSQL and the clients share the
machine's cores: compare within a run.

Usage::

    .venv/bin/python bench/rooms.py [--rooms 100] [--per-room 20] [--rate 1] [--seconds 15] [--rounds 2]
                                    [--idle 5] [--fans 10] [--server-workers 2] [--tipper-workers 1]
                                    [--port 0]
"""
from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WebServer, api, fresh_services, fund, raise_fd_limit, register, verify  # noqa: E402
from fanout import ViewerPool, latencies_and_lost, percentile  # noqa: E402

TARGET = 1.5
SETTLE = 1.5  # seconds after the last tip is sent that still count: its deliveries land


def live_room(base: str, i: int) -> dict:
    """A creator with a live public stream: {"creator": id, "id": stream id, "path": socket path}."""
    creator = register(base, "creator", f"Room Creator {i}")
    status, body = api(base, "POST", "/api/streams/create", {"type": "public", "title": f"Room {i}"},
                       creator["token"])
    assert status == 201, body
    stream = body["stream"]
    status, body = api(base, "POST", f"/api/streams/{stream['id']}/start", {}, creator["token"])
    assert status == 200, body
    return {"creator": creator["user"]["id"], "id": stream["id"], "path": f"/ws/channels/{stream['channel']}"}


def send_tips(port: int, fans: list[dict], rooms: list[dict], rate_per_room: float, seconds: float,
              sent: dict, failed: list) -> None:
    """Tips on schedule, rooms in turn (room k % len(rooms) gets tip k), each room at
    `rate_per_room`/s, for `seconds`; several threads with a keep-alive connection each.
    Records sent[tip id] = (send time, room's socket path); a tip refused or timed out
    goes to `failed` (and the thread carries on with a new connection)."""
    total_rate = len(rooms) * rate_per_room
    n = max(1, int(seconds * total_rate))
    # A thread for every 4 tips/s (a tip takes ~10-30 ms on a quiet machine), at most C's pool (10 + 10).
    threads = max(1, min(20, n, int(total_rate) // 4))
    lock = threading.Lock()
    start = time.monotonic() + 0.05

    def sender(j: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for k in range(j, n, threads):
            room, fan = rooms[k % len(rooms)], fans[k % len(fans)]
            delay = start + k / total_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({"toCreatorId": room["creator"], "amountTokens": 1, "message": f"room tip {k}",
                               "context": {"streamId": room["id"]}})
            t0 = time.monotonic()
            try:
                conn.request("POST", "/api/tips/send", body=body,
                             headers={"Authorization": f"Bearer {fan['token']}", "Content-Type": "application/json",
                                      "Idempotency-Key": uuid.uuid4().hex})
                resp = conn.getresponse()
                answer = resp.read()
                if resp.status != 201:
                    raise RuntimeError(f"tip refused: {resp.status} {answer[:200]!r}")
            except (OSError, http.client.HTTPException, RuntimeError) as exc:
                with lock:
                    failed.append(repr(exc)[:200])
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            with lock:
                sent[json.loads(answer)["tip"]["id"]] = (t0, room["path"])
        conn.close()

    workers = [threading.Thread(target=sender, args=(j,), daemon=True) for j in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def window(case: str, rooms: list[dict], per_room: int, viewers_at: list[WebServer], tipper: WebServer,
           fans: list[dict], args) -> dict:
    """One measured window: join every room's viewers, sit idle, tip, count; then leave."""
    targets = [(viewers_at[(r * per_room + j) % len(viewers_at)].port, room["path"])
               for r, room in enumerate(rooms) for j in range(per_room)]
    on_path = {room["path"]: per_room for room in rooms}
    pool = ViewerPool(targets, args.readers, args.join_concurrency)
    sent: dict[int, tuple[float, str]] = {}
    failed: list[str] = []

    def web_cpu() -> float:
        return sum(s.cpu_seconds() for s in viewers_at)
    try:
        joined = pool.wait_joined(args.join_timeout)
        time.sleep(1.0)
        idle0, t_idle = web_cpu(), time.monotonic()
        time.sleep(args.idle)
        idle_cores = (web_cpu() - idle0) / (time.monotonic() - t_idle)
        cpu0, tip_cpu0, wall0 = web_cpu(), tipper.cpu_seconds(), time.monotonic()
        send_tips(tipper.port, fans, rooms, args.rate, args.seconds, sent, failed)
        sending = time.monotonic() - wall0
        time.sleep(SETTLE)
        wall = time.monotonic() - wall0
        cpu, tip_cpu = web_cpu() - cpu0, tipper.cpu_seconds() - tip_cpu0
    finally:
        result = pool.leave()
    latencies, lost = latencies_and_lost(sent, result["arrivals"][0], on_path)
    deliveries = len(latencies)
    return {"case": case, "joined": joined["joined"], "viewers": len(targets), "tips": len(sent), "failed": failed,
            "deliveries": deliveries, "lost": lost, "tip_rate": len(sent) / sending,
            "target_rate": len(rooms) * args.rate, "closed": result["closed"], "wall": wall,
            "web_cpu": cpu, "idle_cores": idle_cores, "net_cpu": cpu - idle_cores * wall,
            "tip_cpu": tip_cpu, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--per-room", type=int, default=20, help="viewers per room (one room gets rooms × this)")
    parser.add_argument("--rate", type=float, default=1.0, help="tips per second into each room")
    parser.add_argument("--seconds", type=float, default=15.0, help="tip window per case and round")
    parser.add_argument("--rounds", type=int, default=2, help="each round measures both cases")
    parser.add_argument("--idle", type=float, default=5.0, help="idle seconds measured before each tip window")
    parser.add_argument("--fans", type=int, default=10)
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn processes per instance")
    parser.add_argument("--tipper-workers", type=int, default=1,
                        help="gunicorn processes of C (not measured; one keeps the three instances' database "
                             "pools, (10 + 10) per process, under PostgreSQL's default max_connections of 100)")
    parser.add_argument("--readers", type=int, default=None, help="viewer processes (default one per 2,500)")
    parser.add_argument("--join-concurrency", type=int, default=1000)
    parser.add_argument("--join-timeout", type=float, default=120.0)
    parser.add_argument("--port", type=int, default=0, help="ports of A, B, C from here; 0: free ports")
    args = parser.parse_args()
    raise_fd_limit()
    total = args.rooms * args.per_room

    with fresh_services() as (name, db_url, redis):
        # Pub/sub ignores the Redis database number: a prefix of its own keeps this run apart.
        extra = {"WEB_CONCURRENCY": str(args.server_workers), "REDIS_PREFIX": f"pmbench{uuid.uuid4().hex[:8]}:",
                 "TIP_LIMIT_PER_USER": "100000 per second"}  # tips/s per fan is not what is measured
        servers = []
        try:
            for i, label in enumerate("ABC"):
                env = {**extra, "WEB_CONCURRENCY": str(args.tipper_workers)} if label == "C" else extra
                servers.append(WebServer(db_url, redis, "gevent", env, port=args.port + i if args.port else None,
                                         log_path=f"/tmp/pm-bench-rooms-{label}.log"))
            viewers_at, tipper = servers[:2], servers[2]
            base = tipper.base
            with ThreadPoolExecutor(max_workers=4) as pool:
                many = list(pool.map(lambda i: live_room(base, i), range(args.rooms)))
            one = [live_room(base, args.rooms)]
            fans = [register(base, "fan", f"Room Fan {i}") for i in range(args.fans)]
            per_fan = int(args.rounds * args.seconds * args.rooms * args.rate / args.fans) + 100
            for f in fans:
                fund(base, f["token"], per_fan)
            print(f"database {name}; viewers on A and B ({args.server_workers} gevent workers each), tips "
                  f"through C ({args.tipper_workers}); {total:,} viewers: {args.rooms} rooms × {args.per_room} at {args.rate:g} tip/s each, "
                  f"vs 1 room × {total:,} at {args.rate:g} tip/s; {args.seconds:g} s per window, "
                  f"{args.rounds} round(s)\n", flush=True)
            results = []
            for r in range(args.rounds):
                order = [("one room", one, total), ("rooms", many, args.per_room)]
                for case, rooms, per_room in (order if r % 2 == 0 else order[::-1]):
                    w = window(case, rooms, per_room, viewers_at, tipper, fans, args)
                    results.append(w)
                    print(f"  round {r + 1} {case:<8}: joined {w['joined']:,}/{w['viewers']:,}; {w['tips']:,} tips "
                          f"({w['tip_rate']:.1f}/s of {w['target_rate']:g}/s), "
                          f"{w['deliveries']:,} deliveries ({w['deliveries'] / w['wall']:,.0f}/s), lost {w['lost']:,}; "
                          f"A+B {w['web_cpu'] / w['wall']:.2f} cores (idle {w['idle_cores']:.2f}), "
                          f"{w['web_cpu'] / max(w['deliveries'], 1) * 1e6:.1f} µs per delivery; "
                          f"C {w['tip_cpu'] / w['wall']:.2f} cores; p50 {w['p50']:.0f} ms, p99 {w['p99']:.0f} ms",
                          flush=True)
                    if w["failed"]:
                        print(f"          {len(w['failed'])} tip request(s) FAILED, e.g. {w['failed'][0]}", flush=True)
        finally:
            for server in servers:
                server.stop()
        violations = verify(db_url, redis)

    print(f"\n{'case':<10} {'tips':>7} {'deliveries':>11} {'lost':>6} {'A+B µs/delivery':>16} "
          f"{'net of idle':>12} {'C ms/tip':>9} {'p50 ms':>7} {'p99 ms':>7}")
    per = {}
    for case in ("one room", "rooms"):
        rows = [w for w in results if w["case"] == case]
        tips, deliveries = sum(w["tips"] for w in rows), sum(w["deliveries"] for w in rows)
        cpu, net, tip_cpu = (sum(w[k] for w in rows) for k in ("web_cpu", "net_cpu", "tip_cpu"))
        per[case] = cpu / max(deliveries, 1) * 1e6
        print(f"{case:<10} {tips:>7,} {deliveries:>11,} {sum(w['lost'] for w in rows):>6,} {per[case]:>16.1f} "
              f"{net / max(deliveries, 1) * 1e6:>12.1f} {tip_cpu / max(tips, 1) * 1000:>9.2f} "
              f"{max(w['p50'] for w in rows):>7.0f} {max(w['p99'] for w in rows):>7.0f}")
    ratio = per["rooms"] / per["one room"]
    spread = max(ratio, 1 / ratio)
    lost = sum(w["lost"] for w in results)
    all_joined = all(w["joined"] == w["viewers"] for w in results)
    tips_failed = sum(len(w["failed"]) for w in results)
    print("\nverdict")
    checks = [(f"CPU per delivery, rooms / one room = {ratio:.2f} ({per['rooms']:.1f} / {per['one room']:.1f} µs; "
               f"target within {TARGET}×)", spread <= TARGET),
              (f"lost {lost:,}, every viewer joined: {all_joined}, tips failed {tips_failed} (target 0, yes, 0)",
               lost == 0 and all_joined and not tips_failed),
              (f"books: ledger verify {'clean' if not violations else violations[:3]}", not violations)]
    for line, passed in checks:
        print(f"  {line}  {'PASS' if passed else 'FAIL'}")
    slow = [w for w in results if w["tip_rate"] < 0.9 * w["target_rate"]]
    if slow:
        # The comparison assumes equal deliveries per second; say so when the tipper could not keep up.
        print(f"  NOTE: {len(slow)} window(s) sent tips below 90% of the scheduled rate (C or PostgreSQL too "
              f"slow here), e.g. {slow[0]['case']}: {slow[0]['tip_rate']:.1f}/s of {slow[0]['target_rate']:g}/s")
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
