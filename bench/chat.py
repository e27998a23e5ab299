"""Chat benchmark: one room, many viewers, chatters posting as fast as the rate limit allows,
and tips into the same room at the same time (issue 18).

What is measured
----------------
The production server (gunicorn with gunicorn.conf.py, as bench/fanout.py runs it)
against a fresh database and Redis. `--viewers` WebSockets (default 1,000) join one public
stream's channel; then for `--seconds` (default 20) `--chatters` users (default 50) each
post a message every CHAT_LIMIT_PER_USER allows (5 per 10 seconds: one every 2 s, start
times spread over the first interval), while one fan tips `--tip-rate` times a second
(bench/fanout.py's `send_tips`). For every message and every socket we record the time
from the post request being sent to the message's line (`id="chat-<id>"`) arriving; for
every tip, to its overlay pop (`id="tip-<id>"`), exactly as bench/fanout.py measures it.
A message or tip that never reaches a socket is lost; a post the rate limit refused (429)
is counted apart (it was never sent to anyone).

Targets (issue 18): 0 lost, and p99 chat ≤ 1.5 × p99 tip overlay in the same run. The
exit status is non-zero on any loss (the ratio is printed with its verdict).

The viewers are bench/fanout.py's minimal asyncio readers in this process; the server,
Redis, PostgreSQL and the clients share the machine's cores, so absolute numbers move
with load: compare within a run.

Usage::

    .venv/bin/python bench/chat.py [--viewers 1000] [--chatters 50] [--seconds 20] [--tip-rate 5]
                                   [--server-workers 2]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WebServer, api, fresh_services, fund, register  # noqa: E402
from fanout import TIP_ID, percentile, read_arrivals, send_tips  # noqa: E402

CHAT_ID = re.compile(rb'id="chat-(\d+)"')
LIMIT, PERIOD = 5, 10.0  # CHAT_LIMIT_PER_USER's default, "5 per 10 seconds"
INTERVAL = PERIOD / LIMIT * 1.02  # a hair slower than the limit: clocks and windows never line up exactly


async def viewer(port: int, path: str, ready: asyncio.Event, counter: list, seen: list, stop: asyncio.Event) -> None:
    """One socket: after its (re)connect state, the first arrival time of each chat line and
    tip pop, appended to `seen` as ({chat id: time}, {tip id: time})."""
    await read_arrivals(port, path, (CHAT_ID, TIP_ID), ready, counter, stop,
                        lambda _ws, arrivals: seen.append(arrivals))


def chatter(base: str, token: str, stream_id: int, offset: float, until: float, sent: dict, refused: list,
            lock: threading.Lock) -> None:
    """Runs in a thread: a message every INTERVAL from `offset` on, until `until`."""
    next_at = time.monotonic() + offset
    i = 0
    while next_at < until:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        status, body = api(base, "POST", f"/api/streams/{stream_id}/chat", {"text": f"bench message {i}"}, token)
        with lock:
            if status == 201:
                sent[body["message"]["id"]] = t0
            elif status == 429:
                refused[0] += 1
            else:
                raise RuntimeError(f"chat failed: {status} {body}")
        i += 1
        next_at += INTERVAL


def chat_and_tip(server: WebServer, stream: dict, chatters: list[dict], fan: dict, creator_id: int, args,
                 chat_sent: dict, tip_sent: dict, refused: list) -> None:
    until = time.monotonic() + args.seconds
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=len(chatters) + 1) as pool:
        jobs = [pool.submit(chatter, server.base, c["token"], stream["id"], INTERVAL * i / len(chatters), until,
                            chat_sent, refused, lock) for i, c in enumerate(chatters)]
        jobs.append(pool.submit(send_tips, server.base, fan, creator_id, stream["id"],
                                max(1, int(args.seconds * args.tip_rate)), args.tip_rate, tip_sent))
        for job in jobs:
            job.result()


def latencies(seen: list, sent: dict, which: int, viewers: int) -> tuple[list[float], int]:
    found, lost = [], 0
    for arrivals in (s[which] for s in seen):
        for item_id, t0 in sent.items():
            if item_id in arrivals:
                found.append((arrivals[item_id] - t0) * 1000)
            else:
                lost += 1
    lost += (viewers - len(seen)) * len(sent)
    return found, lost


async def measure(server: WebServer, stream: dict, chatters: list[dict], fan: dict, creator_id: int, args) -> dict:
    path = f"/ws/channels/{stream['channel']}"
    ready, stop = asyncio.Event(), asyncio.Event()
    counter, seen = [0, args.viewers], []
    tasks = []
    t_connect = time.monotonic()
    for i in range(args.viewers):
        tasks.append(asyncio.create_task(viewer(server.port, path, ready, counter, seen, stop)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # don't SYN-flood the listen backlog
    await asyncio.wait_for(ready.wait(), timeout=120)
    connect_s = time.monotonic() - t_connect
    await asyncio.sleep(1.0)
    chat_sent: dict[int, float] = {}
    tip_sent: dict[int, float] = {}
    refused = [0]
    cpu0, server0, wall0 = time.process_time(), server.cpu_seconds(), time.monotonic()
    await asyncio.to_thread(chat_and_tip, server, stream, chatters, fan, creator_id, args, chat_sent, tip_sent, refused)
    await asyncio.sleep(2.0)  # let the last ones land
    wall = time.monotonic() - wall0
    client_cores, server_cores = (time.process_time() - cpu0) / wall, (server.cpu_seconds() - server0) / wall
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    rows = {}
    for kind, sent, which in (("chat", chat_sent, 0), ("tip", tip_sent, 1)):
        found, lost = latencies(seen, sent, which, args.viewers)
        rows[kind] = {"sent": len(sent), "deliveries": len(found), "lost": lost, "p50": percentile(found, 50),
                      "p99": percentile(found, 99), "max": max(found) if found else float("nan")}
    return {"rows": rows, "refused": refused[0], "connect_s": connect_s, "client_cores": client_cores,
            "server_cores": server_cores}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--chatters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the chatters (and the tipper) go on")
    parser.add_argument("--tip-rate", type=float, default=5.0, help="tips per second during the same time")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn processes")
    args = parser.parse_args()

    with fresh_services() as (name, db_url, redis):
        print(f"database {name}; {args.viewers:,} viewers, {args.chatters} chatters (one message every "
              f"{INTERVAL:.2f} s each) and {args.tip_rate:g} tips/s for {args.seconds:g} s; "
              f"{args.server_workers} gunicorn worker process(es)\n", flush=True)
        server = WebServer(db_url, redis, "gevent", {"WEB_CONCURRENCY": str(args.server_workers)},
                           log_path="/tmp/pm-bench-chat.log")
        try:
            creator = register(server.base, "creator", "Bench Creator")
            fan = register(server.base, "fan", "Bench Tipper")
            fund(server.base, fan["token"], int(args.seconds * args.tip_rate) + 100)
            chatters = [register(server.base, "fan", f"Chatter {i}") for i in range(args.chatters)]
            _, body = api(server.base, "POST", "/api/streams/create", {"type": "public", "title": "Chat room"},
                          creator["token"])
            stream = body["stream"]
            api(server.base, "POST", f"/api/streams/{stream['id']}/start", {}, creator["token"])
            r = asyncio.run(measure(server, stream, chatters, fan, creator["user"]["id"], args))
        finally:
            server.stop()

    print(f"{'':<6} {'sent':>6} {'deliveries':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'lost':>6}")
    for kind, row in r["rows"].items():
        print(f"{kind:<6} {row['sent']:>6,} {row['deliveries']:>11,} {row['p50']:>8.1f} {row['p99']:>8.1f} "
              f"{row['max']:>8.1f} {row['lost']:>6,}")
    print(f"\nposts refused by the rate limit: {r['refused']}; connected in {r['connect_s']:.1f} s; "
          f"CPU cores used: clients {r['client_cores']:.2f}, server {r['server_cores']:.2f}")
    chat, tip = r["rows"]["chat"], r["rows"]["tip"]
    ratio = chat["p99"] / tip["p99"] if tip["p99"] else float("nan")
    print(f"\nverdict\n  lost: chat {chat['lost']}, tips {tip['lost']} (target 0)  "
          f"{'PASS' if chat['lost'] == tip['lost'] == 0 else 'FAIL'}")
    print(f"  p99 chat / p99 tip = {ratio:.2f} ({chat['p99']:.1f} / {tip['p99']:.1f} ms; target ≤ 1.5)  "
          f"{'PASS' if ratio <= 1.5 else 'FAIL'}")
    return 0 if chat["lost"] == tip["lost"] == 0 and chat["sent"] and tip["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
