"""Join-storm benchmark: sockets joining one stream as fast as they can, with the
join snapshot (app/realtime/snapshot.py) and without it, in the same run.

What is measured
----------------
Two production servers (gunicorn with gunicorn.conf.py, `--server-workers`
processes each) on one fresh database and Redis: one as configured
(SNAPSHOT_CACHE on), one with SNAPSHOT_CACHE=0 (every join renders its state
from PostgreSQL, as before the cache). One public live stream with a full room:
10 recent tips, 40 chat messages, a goal and a leaderboard of 10 tippers. A
round opens `--joins` WebSockets to the stream's channel, at most
`--concurrency` handshakes in flight, and times until every socket has
received its connect state; then closes them. Rounds alternate between the two
servers (`--rounds` each). Reported per server: joins/s (best round), and the
servers' CPU seconds per 1,000 joins (all rounds). With `--tip-rate` a fan
tips the stream during every round, so snapshots are invalidated all the time.

Hard checks (exit 1): every socket of the cached server gets a connect state
with the stream's status, its latest tip and its chat; the books balance
(sockets of the uncached server left without a state, e.g. when its database
pool ran dry for 30 s, are reported). Target: the cached server joins ≥ 1.5×
as fast as the uncached one (ratio of best rounds).

The clients are asyncio readers in this process, sharing the machine's cores
with the servers, PostgreSQL and Redis: compare the ratio, not absolute rates.

Usage::

    .venv/bin/python bench/joins.py [--joins 2000] [--rounds 3] [--concurrency 200]
                                    [--server-workers 2] [--tip-rate 0]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WebServer, api, fresh_services, fund, register, verify  # noqa: E402
from fanout import MiniWebSocket  # noqa: E402

TARGET = 1.5
RECENT = re.compile(rb'id="recent-tip-(\d+)"')


def setup_room(base: str) -> dict:
    """A live public stream with 10 tippers, 40 chat messages and a goal; its channel
    and latest tip id, and a funded fan to tip during rounds."""
    creator = register(base, "creator", "Bench Creator")
    _, body = api(base, "POST", "/api/streams/create", {"type": "public", "title": "Join storm"}, creator["token"])
    stream = body["stream"]
    api(base, "POST", f"/api/streams/{stream['id']}/start", {}, creator["token"])
    status, body = api(base, "POST", f"/api/streams/{stream['id']}/goal",
                       {"title": "New microphone", "targetTokens": 100_000}, creator["token"])
    assert status == 200, body
    fans = [register(base, "fan", f"Bench Fan {i}") for i in range(10)]
    last_tip = 0
    for i, fan in enumerate(fans):
        fund(base, fan["token"], 10_000)
        status, body = api(base, "POST", "/api/tips/send",
                           {"toCreatorId": creator["user"]["id"], "amountTokens": 10 + i,
                            "message": f"tip {i}", "context": {"streamId": stream["id"]}},
                           fan["token"], str(uuid.uuid4()))
        assert status == 201, body
        last_tip = body["tip"]["id"]
        for j in range(4):
            status, body = api(base, "POST", f"/api/streams/{stream['id']}/chat",
                               {"text": f"hello {i}.{j}"}, fan["token"])
            assert status == 201, body
    return {"stream": stream, "creator_id": creator["user"]["id"], "last_tip": last_tip, "tipper": fans[0]}


async def storm(port: int, path: str, joins: int, concurrency: int) -> tuple[float, list[bytes]]:
    """Open `joins` sockets (≤ `concurrency` handshakes at once); (seconds until every
    one got its connect state, the states). Failed sockets give an empty state."""
    gate = asyncio.Semaphore(concurrency)
    opened: list[MiniWebSocket] = []

    async def join() -> bytes:
        try:
            async with gate:
                ws = await MiniWebSocket.connect("127.0.0.1", port, path)
                opened.append(ws)
                async for message in ws.messages():
                    return message
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        return b""

    started = time.monotonic()
    states = await asyncio.gather(*(join() for _ in range(joins)))
    elapsed = time.monotonic() - started
    for ws in opened:
        ws.close()
    await asyncio.sleep(0.5)  # let the servers see the closes before the next round
    return elapsed, states


def tipping(base: str, room: dict, rate: float, stop: threading.Event) -> list[int]:
    """Tip the stream `rate` times a second until `stop`; the ids of the tips sent."""
    sent = []
    while not stop.wait(1 / rate):
        status, body = api(base, "POST", "/api/tips/send",
                           {"toCreatorId": room["creator_id"], "amountTokens": 1,
                            "context": {"streamId": room["stream"]["id"]}},
                           room["tipper"]["token"], str(uuid.uuid4()))
        if status == 201:
            sent.append(body["tip"]["id"])
    return sent


def check(states: list[bytes], latest_tip: int) -> int:
    """Sockets whose state lacks the status, the chat, or a tip at least as new as `latest_tip`."""
    bad = 0
    for state in states:
        ids = [int(i) for i in RECENT.findall(state)]
        if b'id="stream-status"' not in state or b'id="chat-history"' not in state or not ids \
                or max(ids) < latest_tip:
            bad += 1
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight at once")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn processes per server")
    parser.add_argument("--tip-rate", type=float, default=0.0, help="tips per second during each round")
    args = parser.parse_args()

    ok = True
    with fresh_services() as (name, db_url, redis):
        common = {"WEB_CONCURRENCY": str(args.server_workers), "CHAT_LIMIT_PER_USER": "1000 per second"}
        servers = {"cached": WebServer(db_url, redis, "gevent", common, log_path="/tmp/pm-bench-joins-cached.log"),
                   "uncached": WebServer(db_url, redis, "gevent", {**common, "SNAPSHOT_CACHE": "0"},
                                         log_path="/tmp/pm-bench-joins-uncached.log")}
        try:
            room = setup_room(servers["cached"].base)
            print(f"database {name}; {args.joins:,} joins per round, {args.concurrency} handshakes in flight, "
                  f"{args.rounds} round(s) per server, {args.server_workers} worker(s) per server, "
                  f"tips during rounds: {args.tip_rate:g}/s\n", flush=True)
            path = f"/ws/channels/{room['stream']['channel']}"
            best = dict.fromkeys(servers, 0.0)
            cpu = dict.fromkeys(servers, 0.0)
            failed = dict.fromkeys(servers, 0)
            for r in range(args.rounds):
                for label, server in servers.items():
                    stop = threading.Event()
                    sent: list[int] = []
                    tipper = None
                    if args.tip_rate:
                        tipper = threading.Thread(target=lambda: sent.extend(tipping(server.base, room,
                                                                                     args.tip_rate, stop)))
                        tipper.start()
                    cpu0 = server.cpu_seconds()
                    elapsed, states = asyncio.run(storm(server.port, path, args.joins, args.concurrency))
                    cpu[label] += server.cpu_seconds() - cpu0
                    stop.set()
                    if tipper:
                        tipper.join()
                    bad = check(states, room["last_tip"])
                    failed[label] += bad
                    rate = args.joins / elapsed
                    best[label] = max(best[label], rate)
                    print(f"  round {r + 1} {label:<8}: {args.joins:,} joins in {elapsed:5.2f} s = {rate:7.0f}/s"
                          f"  (sockets without a full state: {bad}; tips during the round: {len(sent)})",
                          flush=True)
                    if sent:
                        room["last_tip"] = max(room["last_tip"], *sent)
        finally:
            for server in servers.values():
                server.stop()
        unbalanced = verify(db_url, redis)
        ok &= not unbalanced

    total = args.joins * args.rounds
    ratio = best["cached"] / best["uncached"]
    print("\nverdict")
    for label in servers:
        print(f"  {label:<8}: best {best[label]:7.0f} joins/s; server CPU {cpu[label] / total * 1000:6.2f} s "
              f"per 1,000 joins")
    print(f"  joins/s cached / uncached = {ratio:.2f} (target ≥ {TARGET})  {'PASS' if ratio >= TARGET else 'FAIL'}")
    print(f"  CPU per join uncached / cached = {cpu['uncached'] / cpu['cached']:.2f} (reported)")
    print(f"  sockets without a full state: cached {failed['cached']}, uncached {failed['uncached']} (reported)")
    ok &= failed["cached"] == 0
    print(f"  every cached join got a full state, books balance: {'PASS' if ok else 'FAIL'}"
          + (f" ({len(unbalanced)} ledger problems)" if unbalanced else ""))
    return 0 if ok and ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
