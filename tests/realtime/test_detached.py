"""Sockets the hub serves itself (app/realtime/detached.py), under gevent as
production runs them: each case below runs in a monkey-patched process of its
own, with a real TCP connection whose far end plays the browser (masked frames,
as browsers send them), and a real Hub on Redis where the case needs one."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import pytest

from tests.realtime.helpers import ROOT

PRELUDE = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()

    import json, os, socket, struct, sys, time
    import gevent
    from app.realtime import detached
    from app.realtime.hub import ENDED, RESYNC, Hub, Subscriber, text_frame

    url, prefix, tag = sys.argv[1:4]
    out = {}
    gone = []

    def pair():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        browser = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        listener.close()
        return server, browser

    def connect(ping=None, sub=None):
        server, browser = pair()
        sub = sub or Subscriber(("c",))
        conn = detached.Connection(server, sub, gone.append, ping)
        server.close()  # what gunicorn does once the handler returns: the connection stays open
        sub.sink = conn  # as Hub.hand_over leaves it
        return conn, sub, browser

    def masked(opcode, payload=b"", mask=b"\\x01\\x02\\x03\\x04"):
        head = struct.pack("!B", 0x80 | opcode)
        n = len(payload)
        if n < 126:
            head += struct.pack("!B", 0x80 | n)
        elif n < 1 << 16:
            head += struct.pack("!BH", 0x80 | 126, n)
        else:
            head += struct.pack("!BQ", 0x80 | 127, n)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def frames(sock, timeout=3.0):
        # Every frame the server sends until it ends the connection (or `timeout`):
        # [(opcode, payload)], and whether it ended the connection.
        sock.settimeout(timeout)
        data, ended = b"", False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    ended = True
                    break
                data += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            ended = True
        got, at = [], 0
        while at + 2 <= len(data):
            n, start = data[at + 1] & 0x7F, at + 2
            if n == 126:
                n, start = struct.unpack_from("!H", data, at + 2)[0], at + 4
            elif n == 127:
                n, start = struct.unpack_from("!Q", data, at + 2)[0], at + 10
            got.append((data[at] & 0x0F, data[start:start + n]))
            at = start + n
        return got, ended

    def tick_until_gone(conn, seconds):
        # The hub's ticks, as its listener runs them, until the connection ended; → seconds taken.
        started = time.monotonic()
        while not gone and time.monotonic() - started < seconds:
            gevent.sleep(0.05)
            conn.tick(time.monotonic())
        return time.monotonic() - started

    def closing(got):
        return [(struct.unpack("!H", p[:2])[0], p[2:].decode()) for op, p in got if op == 8]
""")


def run(body: str, services=None, timeout: float = 60) -> dict:
    """Run PRELUDE + `body` under gevent; → the `out` dict it fills."""
    url = services[1] if services else "redis://127.0.0.1:1/0"
    script = PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    proc = subprocess.run([sys.executable, "-c", script, url, f"pmtest{uuid.uuid4().hex[:8]}:", uuid.uuid4().hex[:8]],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_frames_are_written_straight_to_the_socket_in_order():
    out = run("""
        conn, sub, browser = connect()
        for i in range(50):
            assert sub.offer(text_frame(f"m{i}".encode())) is False  # written, no loop to wake
        conn.close(1000, "bye")
        got, ended = frames(browser)
        out["texts"] = [p.decode() for op, p in got if op == 1]
        out["close"] = closing(got)
    """)
    assert out["texts"] == [f"m{i}" for i in range(50)]
    assert out["close"] == [[1000, "bye"]]


def test_a_ping_is_answered_with_its_payload_and_data_frames_are_dropped():
    out = run("""
        conn, sub, browser = connect()
        browser.sendall(masked(1, b"ignored" * 100) + masked(9, b"are you there"))
        gevent.sleep(0.2)
        sub.offer(text_frame(b"after"))
        browser.sendall(masked(8, struct.pack("!H", 1000)))
        got, ended = frames(browser)
        out["got"] = [[op, p.decode(errors="replace")] for op, p in got]
        out["ended"] = ended
        gevent.sleep(0.1)
        out["gone"] = len(gone)
    """)
    assert out["got"][0] == [10, "are you there"]
    assert out["got"][1] == [1, "after"]
    assert out["got"][2][0] == 8  # the browser's close answered …
    assert out["ended"] and out["gone"] == 1  # … the connection ended, the hub told once


def test_a_close_frame_split_across_reads_is_still_understood():
    out = run("""
        conn, sub, browser = connect()
        frame = masked(8, struct.pack("!H", 1001) + b"going")
        for byte in frame:
            browser.sendall(bytes([byte]))
            gevent.sleep(0.01)
        got, ended = frames(browser)
        out["close"] = closing(got)
        out["ended"] = ended
    """)
    assert out["close"] == [[1001, ""]] and out["ended"]


@pytest.mark.parametrize("frame, code", [("struct.pack('!BB', 0x81, 2) + b'hi'", 1002),  # not masked
                                         ("masked(2, b'x' * (64 * 1024 + 1))", 1009),  # over MAX_FRAME
                                         ("masked(9, b'p' * 300)", 1002)])  # a ping over 125 bytes
def test_a_frame_the_server_will_not_read_closes_the_socket(frame, code):
    out = run(f"""
        conn, sub, browser = connect()
        conn._ping_every = None
        browser.sendall({frame})
        tick_until_gone(conn, 5)
        got, ended = frames(browser, timeout=1)
        out["close"] = closing(got)
        out["gone"] = len(gone)
    """)
    assert out["close"][0][0] == code and out["gone"] == 1


def test_a_browser_that_never_answers_pings_is_closed_and_one_that_does_is_kept():
    out = run("""
        silent, _, silent_browser = connect(ping=0.2)
        lively, _, lively_browser = connect(ping=0.2)

        def answer():
            lively_browser.settimeout(None)
            while True:
                data = lively_browser.recv(100)
                if not data:
                    return
                if data[0] & 0x0F == 9:
                    lively_browser.sendall(masked(10))
        gevent.spawn(answer)
        for _ in range(10):
            gevent.sleep(0.1)
            silent.tick(time.monotonic())
            lively.tick(time.monotonic())
        got, _ = frames(silent_browser, timeout=0.5)
        out["pings"] = sum(op == 9 for op, _ in got)
        out["close"] = closing(got)
        out["lively_open"] = not lively._done and lively._closing_until is None
    """)
    assert out["pings"] >= 1
    assert out["close"] == [[1008, "Ping/Pong timeout"]]
    assert out["lively_open"]


def test_a_close_we_send_ends_the_connection_even_if_the_browser_never_answers():
    out = run("""
        detached.CLOSE_WAIT = 0.3
        conn, sub, browser = connect()
        sub.offer(ENDED)
        taken = tick_until_gone(conn, 3)
        got, ended = frames(browser, timeout=1)
        out["close"] = closing(got)
        out["ended"] = ended
        out["after"] = round(taken, 2)
    """)
    assert out["close"] == [[1008, "Your session has ended; log in again."]]
    assert out["ended"] and out["after"] < 2


def test_resync_closes_with_1012_so_the_browser_reconnects_and_reads_its_state_afresh():
    out = run("""
        conn, sub, browser = connect()
        sub.offer(RESYNC)
        sub.offer(text_frame(b"not after the close"))
        browser.sendall(masked(8, struct.pack("!H", 1012)))
        got, ended = frames(browser)
        out["got"] = [op for op, _ in got]
        out["close"] = closing(got)
    """)
    assert out["got"] == [8] and out["close"][0][0] == 1012


def test_a_browser_that_stops_reading_is_closed_as_too_slow_without_holding_others_back():
    out = run("""
        detached.MAX_QUEUED = 256 * 1024
        slow, slow_sub, slow_browser = connect()
        slow_browser.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        fast, fast_sub, fast_browser = connect()
        received = []

        def read_fast():
            fast_browser.settimeout(None)
            while True:
                data = fast_browser.recv(1 << 20)
                if not data:
                    return
                received.append(len(data))
        gevent.spawn(read_fast)
        frame = text_frame(b"x" * 100_000)
        for i in range(200):  # 20 MB at ~20 MB/s: far past both kernels' buffers and MAX_QUEUED
            slow_sub.offer(frame)
            fast_sub.offer(frame)
            gevent.sleep(0.005)
        out["dropped"] = slow_sub.dropped
        out["queued_within_bound"] = slow._queued_bytes <= detached.MAX_QUEUED + len(frame) + 200
        deadline = time.monotonic() + 10
        while sum(received) < 200 * len(frame) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        out["fast_bytes"] = sum(received)
        out["frame_bytes"] = 200 * len(frame)
        out["fast_dropped"] = fast_sub.dropped
    """)
    assert out["dropped"] and out["queued_within_bound"]
    assert not out["fast_dropped"] and out["fast_bytes"] == out["frame_bytes"]


def test_hand_over_keeps_the_order_of_what_waited_in_the_inbox(services):
    out = run("""
        import redis
        hub = Hub(url, prefix=prefix)
        r = redis.Redis.from_url(url)
        channel = f"detached-{tag}"
        sub = hub.subscribe((channel,))
        for i in range(3):
            r.publish(prefix + channel, f"early {i}")
        deadline = time.monotonic() + 5
        while sub.qsize() < 3 and time.monotonic() < deadline:
            gevent.sleep(0.01)
        server, browser = pair()
        conn = detached.Connection(server, sub, hub.unsubscribe, None)
        server.close()
        hub.hand_over(sub, conn)
        r.publish(prefix + channel, "late")
        out["viewers_before"] = hub.viewer_count(channel)
        gevent.sleep(0.3)  # delivered before the browser leaves
        browser.sendall(masked(8, struct.pack("!H", 1000)))
        got, ended = frames(browser)
        out["texts"] = [p.decode() for op, p in got if op == 1]
        gevent.sleep(0.3)
        out["local_after"] = hub.local_count(channel)
        out["viewers_after"] = hub.viewer_count(channel)
        hub.stop()
    """, services)
    assert out["texts"] == ["early 0", "early 1", "early 2", "late"]
    assert out["viewers_before"] == 1
    assert out["local_after"] == 0 and out["viewers_after"] == 0  # the hub let go of it


def test_a_frame_to_thousands_of_sockets_lets_requests_run_every_few_hundred_writes():
    out = run("""
        hub = Hub(url, prefix=prefix)
        ticks = []  # (writes so far, greenlet turn) each time the "request" greenlet gets a turn
        writes = []

        class Sink:
            def offer(self, message):
                writes.append(message)

        subs = set()
        for _ in range(1200):
            sub = Subscriber(("big",))
            sub.sink = Sink()
            subs.add(sub)
        hub._subs["big"] = subs

        def request():
            while len(writes) < 1200:
                ticks.append(len(writes))
                gevent.sleep(0)
        gevent.spawn(request)
        gevent.sleep(0)  # the request greenlet starts
        hub._dispatch([("big", b"one frame")])
        out["writes"] = len(writes)
        out["turns_during"] = sorted({t for t in ticks if 0 < t < 1200})
    """)
    assert out["writes"] == 1200
    assert out["turns_during"] == [500, 1000]  # hub.YIELD_AFTER_WRITES
