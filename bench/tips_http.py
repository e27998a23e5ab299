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

Rounds alternate (no-op, tips, tips, no-op, …) so drift hits both alike. Each
round prints the cores used by the client, the web tier and (when it runs on this
machine) PostgreSQL's backends of the bench database, and their CPU per request:
the ratio is made of the web's and PostgreSQL's.
Target (issue 19; was 0.4 in issue 3): tips ≥ 0.6× the no-op rate. Afterwards
the ledger is verified and the creator's earnings checked against the tips
counted.

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

Viewers mode (``--viewers 1000``, issue 19)
-------------------------------------------
Tips and fan-out share the web workers in production. This mode adds "stream"
(tips into a live public stream nobody watches) and "watched" (the same tips
into a second live stream of the creator with `--viewers` WebSockets open on its
channel, `/ws/channels/s-…`, of the same server) and reports watched/stream
(target ≥ 0.7). The viewers live in a child process (asyncio protocols that
read frame headers, skip payloads and answer pings; a sample of `--sample`
sockets also notes each tip), so their reading does not compete with the
bench's threads for one GIL; they connect before the first round and stay
connected throughout. After each watched round the bench waits until the
sampled viewers have every tip (printing how long), so what the server still
owes the sockets does not slow the next mode's round. Afterwards every viewer must still be connected and have
received bytes, and each sampled socket must have received every watched tip
(its `id="tip-<id>"` pop): a loss fails the run. With ``--room`` too, both
streams' room claims are held, so they differ by the viewers alone.

Usage::

    .venv/bin/python bench/tips_http.py [--fans 32] [--seconds 12] [--rounds 4] [--room] [--viewers 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WebServer, api, fresh_services, fund, register, verify  # noqa: E402


TARGET = 0.6  # tips / no-op (issue 19)
ROOM_TARGET = 0.9  # room tips / plain tips (issue 18)
VIEWERS_TARGET = 0.7  # watched-stream tips / unwatched-stream tips (issue 19)
TIP_MODES = ("tips", "stream", "room", "watched")
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
            if mode in TIP_MODES:
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
          server=None, stream_id: dict | None = None, viewers=None, postgres=None) -> float:
    stop, errors = threading.Event(), []
    counts = [0] * len(fans)
    threads = [threading.Thread(target=worker, args=(port, f["token"], creator_id, mode, stop, counts, i, errors,
                                                     stream_id), daemon=True) for i, f in enumerate(fans)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    n0, t0 = sum(counts), time.perf_counter()
    c0, s0, v0 = time.process_time(), server.cpu_seconds(), viewers.cpu_seconds() if viewers else 0.0
    p0 = postgres.cpu_seconds() if postgres else None
    time.sleep(seconds)
    n1, t1 = sum(counts), time.perf_counter()
    wall, n = t1 - t0, max(n1 - n0, 1)
    web, pg = server.cpu_seconds() - s0, postgres.cpu_seconds() - p0 if p0 is not None else None
    # Where the time goes: the web tier's and PostgreSQL's CPU per request are what the ratio is made of.
    print(f"      cores: client {(time.process_time() - c0) / wall:.2f}, web {web / wall:.2f}"
          f"{f', postgres {pg / wall:.2f}' if pg is not None else ''}"
          f"{f', viewers {(viewers.cpu_seconds() - v0) / wall:.2f}' if viewers else ''}; "
          f"web CPU per request {web / n * 1000:.2f} ms"
          f"{f', postgres {pg / n * 1000:.2f} ms' if pg is not None else ''}")
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{mode} run failed: {errors[:3]}")
    return (n1 - n0) / (t1 - t0), sum(counts)


class PostgresCpu:
    """CPU seconds used by the server backends of the bench's database (/proc/<pid>/stat), to
    show PostgreSQL's share of each request beside the web tier's. Only when PostgreSQL runs
    on this machine (else `cpu_seconds` is None and nothing is printed).

    The pool's overflow connections come and go during a round, and a backend that exits
    takes its CPU with it: so a thread reads every backend's CPU every 50 ms (the list of
    backends every 250 ms) and keeps the last reading of each, exited ones included. What a
    backend used between its last reading and its exit is missed."""

    def __init__(self, db_url: str, name: str):
        import psycopg
        from _common import libpq_url
        self.name = name
        self.conn = psycopg.connect(libpq_url(db_url), autocommit=True)
        self.local = self._stat(self.conn.info.backend_pid) is not None
        self.last: dict[tuple[int, int], float] = {}  # (pid, start time): the last CPU reading
        self.lock, self.stop_event = threading.Lock(), threading.Event()
        if self.local:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()

    @staticmethod
    def _stat(pid: int) -> tuple[float, int] | None:
        """(CPU seconds, start time) of a process, or None once it is gone."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[19])

    def _sample(self) -> None:
        pids, tick = [], 0
        while not self.stop_event.wait(0.05):
            if tick % 5 == 0:
                pids = [pid for (pid,) in self.conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'", (self.name,)).fetchall()]
            tick += 1
            for pid in pids:
                found = self._stat(pid)
                if found is not None:  # keyed by start time too: a new backend may reuse a pid
                    with self.lock:
                        self.last[pid, found[1]] = found[0]

    def cpu_seconds(self) -> float | None:
        if not self.local:
            return None
        with self.lock:
            return sum(self.last.values())

    def close(self) -> None:
        self.stop_event.set()
        if self.local:
            self.thread.join()
        self.conn.close()


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


def live_stream(base: str, token: str, title: str) -> dict:
    """A new live public stream of the creator: its JSON (id, channel, …)."""
    _, made = api(base, "POST", "/api/streams/create", {"type": "public", "title": title}, token=token)
    api(base, "POST", f"/api/streams/{made['stream']['id']}/start", token=token)
    return made["stream"]


TIP_POP = re.compile(rb'id="tip-(\d+)"')


class _Viewer(asyncio.Protocol):
    """One viewer's socket: the handshake, then every frame's header read (payloads are
    skipped, not copied) and each ping answered, as a browser does (the server closes a
    socket that misses its pongs). A sampled viewer also notes the tip pops it receives
    after its connect state, and the code of a close the server sent."""

    def __init__(self, request: bytes, sample: bool, joined: asyncio.Future):
        self.request, self.sample, self.joined = request, sample, joined
        self.head, self.upgraded, self.open, self.transport = b"", False, False, None
        self.received, self.buf, self.frames, self.tips, self.close_code = 0, b"", 0, set(), None

    def connection_made(self, transport) -> None:
        self.open, self.transport = True, transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            status, _, data = self.head.partition(b"\r\n\r\n")
            if b" 101 " not in status.split(b"\r\n", 1)[0]:
                self.joined.done() or self.joined.set_exception(ConnectionError(status[:80]))
                return
            self.upgraded = True
        self.received += len(data)
        if self.received and not self.joined.done():
            self.joined.set_result(True)  # the connect state has started to arrive
        buf, pos = self.buf + data if self.buf else data, 0
        while len(buf) - pos >= 2:
            opcode, length, offset = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
            if length == 126:
                length, offset = int.from_bytes(buf[pos + 2:pos + 4], "big"), pos + 4
            elif length == 127:
                length, offset = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
            if len(buf) < offset + length or offset > len(buf):
                break
            self.frames += 1
            if opcode == 9:  # ping → pong (a client's frames are masked; a zero mask)
                self.transport.write(bytes([0x8A, 0x80 | length]) + b"\0\0\0\0" + buf[offset:offset + length])
            elif opcode == 8:
                self.close_code = int.from_bytes(buf[offset:offset + 2], "big") if length >= 2 else 1005
            elif self.sample and self.frames > 1:  # the first is the connect state (recent tips included)
                self.tips.update(TIP_POP.findall(buf, offset, offset + length))
            pos = offset + length
        self.buf = buf[pos:]

    def connection_lost(self, exc) -> None:
        self.open = False


def _viewers_child(port: int, path: str, n: int, sample: int, conn) -> None:
    """The viewers' process: open `n` sockets on `path` (the first `sample` parse their
    frames), say ("joined", seconds), then answer "count" with their state until "stop"."""
    async def run() -> None:
        loop = asyncio.get_running_loop()
        viewers, t0 = [], time.monotonic()
        for i in range(n):
            key = base64.b64encode(os.urandom(16)).decode()
            request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                       ).encode()
            viewer = _Viewer(request, i < sample, loop.create_future())
            await loop.create_connection(lambda v=viewer: v, "127.0.0.1", port)
            viewers.append(viewer)
            if i % 100 == 99:
                await asyncio.sleep(0.05)  # don't SYN-flood the listen backlog
        await asyncio.wait_for(asyncio.gather(*(v.joined for v in viewers)), timeout=120)
        conn.send(("joined", time.monotonic() - t0, sum(v.open for v in viewers)))
        done = loop.create_future()

        def command() -> None:
            what = conn.recv()
            if what == "stop":
                done.set_result(None)
                return
            codes = [v.close_code for v in viewers if v.sample and v.close_code is not None]
            conn.send({"open": sum(v.open for v in viewers), "silent": sum(v.received == 0 for v in viewers),
                       "sampled": [len(v.tips) for v in viewers if v.sample],
                       "frames": [v.frames for v in viewers if v.sample],
                       "closed_by_server": {code: codes.count(code) for code in set(codes)}})
        loop.add_reader(conn.fileno(), command)
        await done
    asyncio.run(run())


class Viewers:
    """`n` WebSocket viewers of a channel in a child process (see `_viewers_child`)."""

    def __init__(self, port: int, channel: str, n: int, sample: int):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_viewers_child, args=(port, f"/ws/channels/{channel}", n, sample, child_conn),
                                daemon=True)
        self.proc.start()
        if not self.conn.poll(180):
            raise RuntimeError("the viewers did not join within 180 s")
        _, self.join_seconds, self.open_after_join = self.conn.recv()

    def cpu_seconds(self) -> float:
        from _common import tree_cpu
        return tree_cpu(self.proc.pid)

    def state(self) -> dict:
        self.conn.send("count")
        return self.conn.recv()

    def catch_up(self, expected: int, timeout: float = 30.0) -> float:
        """Wait until every sampled viewer has `expected` tips (or `timeout`): what the server
        still owes the sockets must not run into the next mode's round. Seconds waited."""
        t0 = time.monotonic()
        while min(self.state()["sampled"]) < expected and time.monotonic() - t0 < timeout:
            time.sleep(0.2)
        return time.monotonic() - t0

    def stop(self) -> None:
        try:
            self.conn.send("stop")
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def viewers_books(viewers: Viewers, n: int, expected: int) -> bool:
    """After the run: every viewer still connected and fed; each sampled one got every watched
    tip's pop (waiting up to 20 s for the last ones to land)."""
    deadline = time.monotonic() + 20
    while True:
        state = viewers.state()
        if min(state["sampled"]) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    lost = sum(expected - got for got in state["sampled"] if got < expected)
    print(f"viewers: {state['open']:,} of {n:,} still connected, {state['silent']} received nothing; "
          f"{len(state['sampled'])} sampled sockets received {min(state['sampled']):,}–{max(state['sampled']):,} "
          f"of the {expected:,} watched tips (lost {lost}); {viewers.open_after_join:,} were connected once all "
          f"had joined; sampled sockets closed by the server, by close code: {state['closed_by_server'] or 'none'}")
    if lost:  # for whoever debugs it: which sampled sockets, and how many frames each got at all
        print("  short sampled sockets (index: tips, frames): " + ", ".join(
            f"{i}: {got}, {frames}" for i, (got, frames) in enumerate(zip(state["sampled"], state["frames"]))
            if got < expected))
    return state["open"] == n and state["silent"] == 0 and lost == 0


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


def ratio_met(base: str, measured: str, base_rate: float, rate: float, target: float, extra: str = "",
              label: str | None = None) -> bool:
    """Print one verdict line, "<base> N/s, <measured> M/s, <label> = M/N (target ≥ T)  PASS|FAIL";
    → whether M/N reached `target`."""
    ratio = rate / base_rate
    met = ratio >= target
    print(f"{base} {base_rate:.0f}/s, {measured} {rate:.0f}/s, {label or f'{measured}/{base}'} = {ratio:.2f} "
          f"(target ≥ {target})  {'PASS' if met else 'FAIL'}{extra}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fans", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per mode (split over rounds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--room", action="store_true",
                        help="also tip into a live stream with a goal and a leaderboard (room/tips ratio)")
    parser.add_argument("--viewers", type=int, default=0,
                        help="also tip into a stream with this many WebSocket viewers (watched/stream ratio)")
    parser.add_argument("--sample", type=int, default=50, help="viewers that check every tip arrives")
    args = parser.parse_args()

    with fresh_services() as (name, db_url, redis):
        worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
        server = WebServer(db_url, redis, worker_class,
                           # The per-user tip limit (40/s) is not what is measured here.
                           {"TIP_LIMIT_PER_USER": "100000 per second"}, log_path="/tmp/pm-bench-tips-http.log")
        jobs = RoomWorker(db_url, redis) if args.room or args.viewers else None
        stream_id, viewers, held = None, None, []
        postgres = PostgresCpu(db_url, name)
        try:
            creator = register(server.base, "creator", "Hot Creator")
            fans = [register(server.base, "fan", f"Fan {i}") for i in range(args.fans)]
            for f in fans:
                fund(server.base, f["token"], 1_000_000)
            modes = ["no-op", "tips"] + (["stream", "room"] if args.room else []) \
                + (["stream", "watched"] if args.viewers and not args.room else ["watched"] if args.viewers else [])
            streams = {mode: live_stream(server.base, creator["token"], f"Bench {mode}")
                       for mode in modes if mode in ("stream", "room", "watched")}
            stream_id = {mode: stream["id"] for mode, stream in streams.items()}
            if args.room:
                status, _ = api(server.base, "POST", f"/api/streams/{stream_id['room']}/goal",
                                {"title": "Bench goal", "targetTokens": 10_000_000}, token=creator["token"])
                assert status == 200, status
                held = [stream_id[m] for m in ("stream", "watched") if m in stream_id]
                for held_id in held:
                    room_claim(redis, held_id, hold=True)
            if args.viewers:
                viewers = Viewers(server.port, streams["watched"]["channel"], args.viewers,
                                  min(args.sample, args.viewers))
            watched = f"; {args.viewers:,} viewers on the watched stream (joined in {viewers.join_seconds:.1f} s, " \
                f"{viewers.open_after_join:,} connected then)" if viewers else ""
            print(f"database {name}; {args.fans} fans → one creator; gunicorn {worker_class} (gunicorn.conf.py)"
                  f"{'; room mode: worker.py running, goal + leaderboard on a live stream' if args.room else ''}"
                  f"{watched}\n")
            rates = {m: [] for m in modes}
            totals = {m: 0 for m in modes}
            per_run = args.seconds / args.rounds
            for r in range(args.rounds):
                order = modes if r % 2 == 0 else modes[::-1]
                for mode in order:
                    rate, total = timed(server.port, fans, creator["user"]["id"], mode, per_run, server=server,
                                        stream_id=stream_id, viewers=viewers, postgres=postgres)
                    rates[mode].append(rate)
                    totals[mode] += total
                    print(f"  round {r + 1}  {mode:<6} {rate:7.0f} req/s", flush=True)
                    if mode == "watched":
                        print(f"      viewers caught up {viewers.catch_up(totals['watched']):.1f} s after the round",
                              flush=True)
            mean = {m: sum(v) / len(v) for m, v in rates.items()}
            tips = mean["tips"]
            print()
            ok = ratio_met("no-op", "tips", mean["no-op"], mean["tips"], TARGET)
            tips_total = sum(totals.get(m, 0) for m in TIP_MODES)
            if args.room:
                ok = ratio_met("stream", "room", mean["stream"], mean["room"], ROOM_TARGET,
                               f"; room/tips = {mean['room'] / tips:.2f}") and ok
                ok = room_books(server.base, creator["token"], stream_id["room"], totals["room"] * TIP) and ok
            if args.viewers:
                ok = ratio_met("stream", f"watched by {args.viewers:,}", mean["stream"], mean["watched"],
                               VIEWERS_TARGET, label="watched/stream") and ok
                ok = viewers_books(viewers, args.viewers, totals["watched"]) and ok
            _, wallet = api(server.base, "GET", "/api/wallet/me", token=creator["token"])
            expected = tips_total * (TIP * 80 // 100)
            violations = verify(db_url, redis)
            print(f"books: {tips_total:,} tips counted, creator earnings {wallet['earnings']:,} "
                  f"(expected {expected:,}); ledger verify: {'clean' if not violations else violations[:3]}")
            return 0 if ok and wallet["earnings"] == expected and not violations else 1
        finally:
            if viewers:
                viewers.stop()
            if jobs:
                jobs.stop()
            for held_id in held:
                room_claim(redis, held_id, hold=False)
            postgres.close()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
