"""Sockets the hub serves itself once they are open (gevent workers only).

Why
---
A viewer's socket only ever receives: the hub's frames, the same bytes for
every viewer of a stream. Served the usual way, each one is two greenlets for
its whole life (the request handler blocked in `sockets.serve`'s loop, and
simple-websocket's reader), with the request's buffers and context around them:
~60 KB a socket measured at 10,000 viewers, and every message to a room wakes
each socket's greenlet to write a few bytes. Here the handler sends the state,
hands the connection to the hub and ends. What is left per socket is this small
object, a `Subscriber`, the connection's file descriptor and one read watcher on
gevent's loop: the hub writes frames to the socket directly, without blocking
and without waking anyone, and the loop calls back when the browser sends
something (a pong, a close, the end of the connection).

Contract
--------
* `offer(message)` (from the hub, never blocking): a frame is written now, or
  queued behind what the kernel has not taken yet (written as the socket drains);
  `RESYNC` closes with 1012 (the browser's ws extension reconnects and its
  handshake reads the state afresh, in its request: the state may depend on who
  is asking); `ENDED` closes with 1008 (the session or token ended); `WAKE` is
  nothing (the loop reports a peer that goes away). A socket with more than
  `MAX_QUEUED` bytes not taken is too slow: it is closed with 1013 (the browser
  reconnects and resyncs), as an inbox that fills up is.
* The browser's frames: a ping is answered, a close is answered and the
  connection ended, data is read and dropped (these sockets take no input),
  a frame over `MAX_FRAME`, not masked, or a control frame over 125 bytes
  closes the socket (1009, 1002, 1002).
* `tick(now)` (from the hub, about every second): pings every `ping_interval`;
  no pong by the next ping closes (1008, as simple-websocket does); a close we
  started ends the connection after `CLOSE_WAIT` even if the browser never
  answers.
* When the connection ends, `gone(subscriber)` runs once, in a greenlet of its
  own (it takes locks and talks to Redis; the loop's callbacks must not block).

Everything here runs in gevent's one OS thread: the hub's listener, the loop's
callbacks and the request handlers are greenlets, and nothing here yields, so
an `offer` and a callback never interleave.
"""
from __future__ import annotations

import _socket
import errno
import struct
import time

import gevent

from app.realtime.hub import ENDED, RESYNC, WAKE

CLOSE_WAIT = 2.0  # how long a close we sent waits for the browser's answer
MAX_QUEUED = 1 << 20  # bytes the kernel hasn't taken before the socket counts as too slow
MAX_FRAME = 64 * 1024  # the largest frame read from a browser (SOCK_SERVER_OPTIONS' max_message_size)
READ_SIZE = 4096

CLOSE, PING, PONG = 0x8, 0x9, 0xA  # control opcodes (RFC 6455 §5.5)
_WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK)


def available() -> bool:
    """True when this process runs under gevent (gunicorn's gevent worker): only
    then can a socket outlive its request handler on the loop."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is in requirements.txt
        return False
    return monkey.is_module_patched("socket")


def close_frame(code: int, reason: str = "") -> bytes:
    """A server's close frame (unmasked) with `code` and `reason` (cut to fit a
    control frame's 125 bytes)."""
    return control_frame(CLOSE, struct.pack("!H", code) + reason.encode()[:123])


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A server's control frame (FIN, unmasked; `payload` at most 125 bytes)."""
    return struct.pack("!BB", 0x80 | opcode, len(payload)) + payload


class Connection:
    """One open WebSocket served by the hub (see the module's contract).

    `sock` is the handler's socket. Its descriptor is detached from it, so the
    server's close once the handler returns leaves the connection open (and
    gevent drops that socket's watchers). Not a dup(): epoll registers the open
    file, not the number, so a registration left by the closed duplicate would
    keep reporting this socket's events under a dead or reused number, which
    libev recovers from by rebuilding its whole epoll set."""

    __slots__ = ("subscriber", "_gone", "_sock", "_fd", "_reader", "_writer", "_queued", "_queued_bytes",
                 "_in", "_closing_until", "_done", "_ping_every", "_next_ping", "_pong_due")

    def __init__(self, sock, subscriber, gone, ping_interval: float | None):
        self.subscriber = subscriber
        self._gone = gone
        self._fd = sock.detach()
        # The C socket, not gevent's: its send and recv never wait (or switch greenlets).
        self._sock = _socket.socket(fileno=self._fd)
        self._sock.setblocking(False)
        loop = gevent.get_hub().loop
        self._reader = loop.io(self._fd, 1)
        self._writer = None  # made when the kernel first refuses bytes
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._in = b""
        self._closing_until = None  # set once we sent a close
        self._done = False
        self._ping_every = ping_interval
        self._next_ping = time.monotonic() + ping_interval if ping_interval else None
        self._pong_due = False
        self._reader.start(self._readable)

    # ---- from the hub ------------------------------------------------------------

    def offer(self, message) -> None:
        if self._done or self._closing_until is not None or message is WAKE:
            return
        if message is RESYNC:
            self.close(1012, "Reconnect to resync.")
        elif message is ENDED:
            self.close(1008, "Your session has ended; log in again.")
        else:
            self._send(message)

    def tick(self, now: float) -> None:
        if self._done:
            return
        if self._closing_until is not None:
            if now >= self._closing_until:
                self._finish()
            return
        if self._next_ping is not None and now >= self._next_ping:
            if self._pong_due:
                self.close(1008, "Ping/Pong timeout")
                return
            self._pong_due = True
            self._next_ping = now + self._ping_every
            self._send(control_frame(PING))

    def close(self, code: int, reason: str) -> None:
        """Send a close frame and wait (at most `CLOSE_WAIT`) for the browser's."""
        if self._done or self._closing_until is not None:
            return
        self._closing_until = time.monotonic() + CLOSE_WAIT
        if self._queued:
            # Too slow, most likely: the frame the kernel took part of must be
            # finished, the rest is dropped; the close goes right after it.
            del self._queued[1:]
            self._queued_bytes = len(self._queued[0])
        self._send(close_frame(code, reason))

    # ---- writing -----------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._queued:  # keep the order: behind what the kernel hasn't taken
            self._queue(data)
            return
        try:
            sent = self._sock.send(data)
        except OSError as exc:
            if exc.errno in _WOULD_BLOCK:
                sent = 0
            else:
                self._finish()
                return
        if sent < len(data):
            self._queue(data[sent:])

    def _queue(self, data: bytes) -> None:
        self._queued.append(data)
        self._queued_bytes += len(data)
        if self._writer is None:
            self._writer = gevent.get_hub().loop.io(self._fd, 2)
        if not self._writer.active:
            self._writer.start(self._writable)
        if self._queued_bytes > MAX_QUEUED and self._closing_until is None:
            self.subscriber.dropped = True
            self.close(1013, "Too slow; reconnect to resync.")

    def _writable(self) -> None:
        try:
            while self._queued:
                data = self._queued[0]
                sent = self._sock.send(data)
                self._queued_bytes -= sent
                if sent < len(data):
                    self._queued[0] = data[sent:]
                    return
                self._queued.pop(0)
        except OSError as exc:
            if exc.errno not in _WOULD_BLOCK:
                self._finish()
            return
        self._writer.stop()

    # ---- reading -----------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except OSError as exc:
            if exc.errno not in _WOULD_BLOCK:
                self._finish()
            return
        if not data:  # the browser went away
            self._finish()
            return
        self._in += data
        while not self._done:
            frame = self._next_frame()
            if frame is None:
                return
            self._on_frame(*frame)

    def _next_frame(self) -> tuple[int, bytes] | None:
        """The next whole frame in `_in` as (opcode, unmasked payload of a control
        frame, else b""), consumed; None while it is incomplete (or closing)."""
        buf = self._in
        if len(buf) < 2:
            return None
        opcode, masked, length, at = buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, at = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, at = struct.unpack_from("!Q", buf, 2)[0], 10
        if not masked:
            self._refuse(1002, "Client frames must be masked.")
            return None
        if length > MAX_FRAME:
            self._refuse(1009, "Message too big.")
            return None
        if opcode >= CLOSE and length > 125:
            self._refuse(1002, "Control frames carry at most 125 bytes.")
            return None
        if len(buf) < at + 4 + length:
            return None
        payload = b""
        if opcode >= CLOSE:  # control frames (at most 125 bytes) are read; data frames are dropped unread
            mask = buf[at:at + 4]
            payload = bytes(b ^ mask[i & 3] for i, b in enumerate(buf[at + 4:at + 4 + length]))
        self._in = buf[at + 4 + length:]
        return opcode, payload

    def _on_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == CLOSE:  # answer it (unless it answers ours), then end the connection
            if self._closing_until is None:
                if self._queued:  # what is left of a frame the kernel took part of goes first
                    del self._queued[1:]
                    self._queued_bytes = len(self._queued[0])
                self._send(control_frame(CLOSE, payload[:2]))
            self._finish()
        elif opcode == PING:
            self._send(control_frame(PONG, payload))
        elif opcode == PONG:
            self._pong_due = False

    def _refuse(self, code: int, reason: str) -> None:
        self._in = b""
        self.close(code, reason)
        self._reader.stop()  # nothing more is read; the close waits out CLOSE_WAIT
        self._closing_until = time.monotonic()  # no answer awaited: the next tick ends it

    # ---- the end -----------------------------------------------------------------

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._reader.stop()
        self._reader.close()
        if self._writer is not None:
            self._writer.stop()
            self._writer.close()
        try:
            self._sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._queued = []
        self._in = b""
        gevent.spawn(self._gone, self.subscriber)
