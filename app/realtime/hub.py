"""The per-process realtime hub: Redis pub/sub in, WebSockets out.

Design note
-----------
Web instances are stateless, so an event committed on instance A must reach a
viewer connected to instance B: every event is PUBLISHed to Redis
(`<prefix><channel>`, prefix `pm:` by default), and each web process runs
exactly one listener thread that hands each message to the sockets *this*
process holds for that channel.

* **Subscribed per channel.** The listener SUBSCRIBEs a channel when the
  process's first local socket joins it and UNSUBSCRIBEs when the last one
  leaves, so a process's work grows with the channels its own sockets watch,
  not with every room on the site. Only the listener thread touches its Redis
  connection (`_Feed`, read with hiredis, not redis-py's PubSub): `subscribe` and
  `unsubscribe` only change the reference counts (`_subs`, under `_lock`) and
  mark the channel dirty; the listener applies dirty channels on its next turn,
  deciding under the same lock, so a join racing the last leave either keeps
  the subscription or waits for the new one. A join that needs a new
  subscription wakes the listener at once by publishing to the process's own
  control channel (`<prefix>hub:<random>`, which the listener always holds, so
  a process with no sockets still proves its connection). Replies to
  SUBSCRIBE/UNSUBSCRIBE come back in order, so a channel is *live* once every
  request sent for it is answered and the last one was a SUBSCRIBE. After a
  reconnect every channel with local sockets is subscribed again, and once
  Redis has confirmed them all every local socket is offered `RESYNC`.
* **Credential feeds** (`<prefix>auth:*`, see `bus.credential_channel`) are one
  pattern subscription per process instead: nearly every socket has its own
  (one per login session), their events are rare (a logout), and a SUBSCRIBE
  round trip per join would cost more than the odd logout every process reads.
* **No gap at subscribe.** `subscribe()` returns only once Redis has confirmed
  the subscription of each of the socket's channels (bounded wait; no wait
  during an outage; no wait at all when the channel is already live, the common
  case for the thousandth viewer of a stream), so a socket that subscribes and
  *then* reads its state from the database misses nothing committed in between.
* **Coalesced fan-out.** When the listener reads a message it also takes what
  Redis has already sent (never waiting for more, so latency does not grow).
  For a channel with an audience (a stream's), the messages of one read become
  ONE frame, their HTML joined with newlines: htmx's ws extension swaps every
  top-level element of a message out of band, in order, so one frame of three
  fragments is three messages to the page, at a third of the socket writes
  (at 1,000 viewers and ~200 tips/s the writes are the cost). Other channels
  are never coalesced: call signaling reads one JSON document per frame, and
  a credential feed's message becomes `ENDED`. Order within a channel is kept.
* **Delivery rounds.** A busy listener delivers at most one round every
  `ROUND_INTERVAL` (200 ms), as a network card moderates its interrupts: after
  a round that delivered, it sleeps until the next is due and then takes,
  without waiting, whatever Redis sent meanwhile. A quiet channel's message
  goes out at once (the listener is waiting in `read`); under load a message
  waits at most the interval. That keeps many small rooms about as cheap per
  delivery as one big one: with a hundred rooms each tipped once a second, a
  process otherwise woke, read and wrote a hundred times a second for five
  sockets at a time, and each of those sends woke a sleeping reader
  (bench/rooms.py, rooms / one room CPU per delivery: 3.06 with a round per
  message; 2.40 with 50 ms rounds and a timed read each; 1.40–1.54 at 100 ms
  and 1.36–1.40 at 200 ms without). In one busy room it makes coalescing bite:
  a round's tips are one frame per viewer.
* **Bounded per-socket inboxes.** The listener never blocks on a socket: it
  offers each message to each subscriber's inbox (`QUEUE_SIZE` items). A
  subscriber whose inbox is full is marked dropped; its socket loop closes
  the connection (the browser reconnects and re-syncs). One slow phone never
  delays the other viewers. The listener yields after each delivered frame
  so that, in a burst, sockets that keep up get to drain their inboxes.
  The inbox is the `Subscriber` itself: a list and a lock made on its first
  wait, ~0.3 KB (a `queue.Queue` is a deque, a lock and three Conditions:
  ~2.5 KB under gevent, 4 KB with threads; tracemalloc). It has one reader,
  the socket's loop.
* **Sockets the hub serves itself** (gevent only, detached.py). Once a viewer's
  socket has its state, `sockets.serve` hands it over (`hand_over`) and its
  request ends: the subscriber's `sink` then takes every message, written to
  the socket by the listener without blocking (what the kernel doesn't take is
  queued, up to a bound that marks the socket too slow), and gevent's loop
  reads what the browser sends. No greenlet per socket: ~1.4 KB a socket
  instead of ~60 KB, and no wake-up per socket per message. The listener yields
  after `YIELD_AFTER_WRITES` such writes so requests keep being served. Under
  threads (the development server, gthread) sockets keep their loop.
* **Memory given back.** A thousand sockets leaving free their objects into
  the allocator's arenas, which glibc keeps. When the local socket count falls
  well below its peak the listener collects garbage and calls `malloc_trim`,
  so an instance shrinks again after a storm.
* **Redis outages.** The listener reconnects with backoff, so after Redis
  comes back events flow again without restarting the app. Publishing while
  Redis is down logs and returns False: the money has already committed.
  Events published during the outage are lost, so once the listener is back
  every local socket is offered `RESYNC` and re-sends its state (as on a
  reconnect): a missed message never leaves a page stale.
* **One frame per message.** The listener turns each message into a complete
  WebSocket text frame once (`text_frame`) and every local socket writes those
  same bytes: server frames are unmasked and sockets negotiate no extension
  (sockets.py declines permessage-deflate), so the frame is identical for all.
  Measured with 1,000 viewers, building a frame per socket was ~10% of a web
  worker's CPU.
* **No timer per message.** A socket loop blocks on its inbox with no timeout;
  instead the listener offers `WAKE` to idle inboxes every `WAKE_INTERVAL`, so
  a loop whose peer went away notices within about a second (a timed wait per
  message cost ~13% of the worker's CPU at 1,000 viewers under gevent).
* **Credentials that end.** A socket opened with a session cookie or an API
  token also subscribes to that credential's channel (`bus.credential_channel`);
  a message there (published when the session ends or the token is revoked)
  reaches it as `ENDED`, and the socket closes: logging out ends live feeds too.
* **Presence.** Each socket is a member of the sorted set `<prefix>viewers:<channel>`
  (score = last heartbeat). For the channels with an audience (`audience`: the
  registry, channels.py, knows which), the hub refreshes its sockets'
  heartbeats, trims stale members (a crashed instance's sockets expire) and
  pushes the viewer count to its local sockets every `PRESENCE_INTERVAL`
  seconds: O(channels) Redis calls per process, not O(viewers²) messages on
  every join.

Redis Cluster. Plain SUBSCRIBE/PSUBSCRIBE/PUBLISH work unchanged on a cluster
(any node; every PUBLISH is broadcast to all nodes over the cluster bus, so
the cluster's own traffic still grows with all events, but each web process's
does not). Sharded pub/sub (SSUBSCRIBE/SPUBLISH, where a message stays on its
channel's shard) does NOT work unchanged: (1) bus.py publishes several
channels in one Lua script call, and on a cluster a script may only touch
keys (and, for SPUBLISH, channels) of one hash slot, while one tip's messages
go to a stream channel and to two users' feeds; the publisher would have to
group messages by slot (one call per slot) or channel names would need hash
tags; (2) the listener would need one connection per shard (a channel's
SSUBSCRIBE must go to the node owning its slot, and must follow slot
migrations, which redis-py's ClusterPubSub does); (3) sharded pub/sub has no
patterns, so credential feeds would become per-channel SSUBSCRIBEs too.
"""
from __future__ import annotations

import _thread
import ctypes
import gc
import itertools
import logging
import queue
import struct
import threading
import time
import uuid

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.redis_client import DEFAULT_MAX_CONNECTIONS, bounded_client

log = logging.getLogger(__name__)

PREFIX = "pm:"  # default namespace; deployments may set REDIS_PREFIX
CREDENTIAL_FEEDS = "auth:"  # see bus.credential_channel
QUEUE_SIZE = 256
PRESENCE_INTERVAL = 5.0
PRESENCE_TTL = 60.0
SUBSCRIBE_WAIT = 2.0  # longest a new socket waits for its channels to be subscribed
SUBSCRIBE_BATCH = 500  # channels per SUBSCRIBE command when many are (re)subscribed at once
READ_BATCH = 1000  # most messages taken from the buffer before they are delivered
READ_TIMEOUT = 0.5  # longest the listener waits for Redis before its periodic work
# Shortest time between two delivery rounds: a message that arrives sooner after a round
# waits for the rest of this and goes out with what arrived meanwhile ("Delivery rounds").
ROUND_INTERVAL = 0.2
HEALTH_INTERVAL = 5.0  # a listener connection silent this long is PINGed; twice this long, dropped

WAKE_INTERVAL = 1.0  # how often idle inboxes are woken to check their socket
YIELD_AFTER_WRITES = 500  # direct socket writes (hand_over) before the listener lets others run
# Give memory back once the local socket count has fallen by at least this many
# and to under half its peak since the last time.
TRIM_AFTER_LEAVING = 500

# Offered to every socket when the listener is back after missing events: re-send your state.
RESYNC = object()
# Offered to idle inboxes every WAKE_INTERVAL: nothing to send, check the connection.
WAKE = object()
# Offered when the session or token the socket was opened with has ended: close it.
ENDED = object()


def text_frame(payload: bytes) -> bytes:
    """`payload` (UTF-8 text) as one complete, unmasked WebSocket text frame
    (RFC 6455 §5.2: FIN + opcode 1, then the 7-, 16- or 64-bit length)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def frame_payload(frame: bytes) -> bytes:
    """The payload of a frame built by `text_frame` (for the few sockets that read
    what they relay, e.g. call signaling)."""
    n = frame[1] & 0x7F
    return frame[2 + (0 if n < 126 else 2 if n == 126 else 8):]


_ids = itertools.count(1)

# A presence tick for one channel: refresh this process's members' heartbeats,
# expire stale members, keep the key alive, → the number of viewers.
# KEYS[1] the channel's presence set; ARGV: now, stale before, key TTL, members…
# (ZADD in chunks: Lua's unpack is limited to a few thousand values.)
_PRESENCE_TICK = """
local key, now = KEYS[1], ARGV[1]
for i = 4, #ARGV, 500 do
    local pairs = {}
    for j = i, math.min(i + 499, #ARGV) do
        pairs[#pairs + 1] = now
        pairs[#pairs + 1] = ARGV[j]
    end
    redis.call('ZADD', key, unpack(pairs))
end
redis.call('ZREMRANGEBYSCORE', key, 0, ARGV[2])
redis.call('EXPIRE', key, ARGV[3])
return redis.call('ZCARD', key)
"""


class Subscriber:
    """One socket's inbox: frames (bytes, from `text_frame`), `RESYNC`, `WAKE` or `ENDED`.

    `queue` is the inbox itself (`get`, `get_nowait`, `put_nowait`, `qsize`,
    `empty`, as a `queue.Queue`), bounded to `QUEUE_SIZE`. Any thread may put;
    only one (the socket's loop) may get.
    """

    __slots__ = ("id", "channels", "dropped", "sink", "_items", "_waiter")

    def __init__(self, channels: tuple[str, ...]):
        self.id = next(_ids)  # unique in this process; presence adds the process's token
        self.channels = channels
        self.dropped = False
        # A list, not a deque: an empty deque is ~600 bytes, an empty list 56, and
        # inboxes hold a few items at most (popping the front of 256 is a short memmove).
        self._items: list = []
        self._waiter = None  # a lock made on the first wait, released by a put
        # Set once the hub serves the socket itself (`Hub.hand_over`): messages go
        # straight to it, and the inbox is no longer used.
        self.sink = None

    @property
    def queue(self) -> "Subscriber":
        return self

    def offer(self, message) -> bool:
        """Deliver `message`; → True if it was put in the inbox (a socket loop
        must run to write it), False if written already (or dropped)."""
        if self.sink is not None:
            self.sink.offer(message)
            return False
        if self.dropped:
            return False
        try:
            self.put_nowait(message)
        except queue.Full:
            self.dropped = True  # the socket loop closes it; never block the listener
            return False
        return True

    def wake(self, now: float) -> None:
        if self.sink is not None:
            self.sink.tick(now)
            return
        if not self._items:  # a busy inbox wakes its loop anyway
            try:
                self.put_nowait(WAKE)
            except queue.Full:
                pass

    def put_nowait(self, item) -> None:
        """Append `item`; raises queue.Full at `QUEUE_SIZE` items."""
        if len(self._items) >= QUEUE_SIZE:
            raise queue.Full
        self._items.append(item)
        # Read the waiter only after appending: the reader sets it before it looks
        # at the items again, so either it sees this item or we see its waiter.
        waiter = self._waiter
        if waiter is not None:
            try:
                waiter.release()
            except (RuntimeError, ValueError):  # already released by another put
                pass

    def get(self, block: bool = True, timeout: float | None = None):
        """The oldest item; waits for one (at most `timeout` seconds) unless
        `block` is false. Raises queue.Empty when there is none."""
        items = self._items
        deadline = None if timeout is None else time.monotonic() + timeout
        while not items:
            if not block:
                raise queue.Empty
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = _thread.allocate_lock()
            waiter.acquire(False)  # locked, whatever puts released it before
            if items:  # arrived before the waiter was armed
                break
            if deadline is None:
                waiter.acquire()
            elif not waiter.acquire(True, max(deadline - time.monotonic(), 0)):
                if not items:
                    raise queue.Empty
        return items.pop(0)

    def get_nowait(self):
        return self.get(False)

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items


class _Feed:
    """The listener's Redis connection in subscribed mode, read without redis-py's
    PubSub: a read takes everything Redis has sent in one recv and hiredis parses
    it (RESP2 replies: [b"message", channel, data], [b"subscribe", channel, n], …).
    Measured under gevent with 100 rooms live, `PubSub.get_message` cost more than
    writing the message to its sockets: a poll() per call to learn whether more was
    buffered, a retry wrapper, a timeout and a dict per message.

    redis-py still opens the connection (URL, TLS, AUTH, database, CLIENT SETNAME);
    only this object reads and writes it afterwards, from the listener thread.
    No retries: a dropped connection raises, so that the listener notices events
    lost while it reconnects. A connection silent for `HEALTH_INTERVAL` is PINGed,
    and one still silent after as long again is given up (a peer gone without a
    FIN would otherwise hold the listener forever)."""

    def __init__(self, url: str, name: str):
        # Kept: a client that is garbage collected closes its pool's connections.
        self._client = redis.Redis.from_url(url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0),
                                            client_name=name, protocol=2)
        self._connection = self._client.connection_pool.get_connection()
        self._sock = self._connection._sock
        self._sock.settimeout(READ_TIMEOUT)
        self._reader = hiredis.Reader()
        self._heard = time.monotonic()  # when Redis last sent anything
        self._pinged = False

    def send(self, *args) -> None:
        self._sock.sendall(b"".join(self._connection.pack_command(*args)))

    def read(self, limit: int) -> list:
        """At most `limit` replies: those already received, else what one recv
        brings (waiting at most `READ_TIMEOUT`); [] if nothing came."""
        replies = self._take(limit)
        if replies:
            return replies
        try:
            data = self._sock.recv(1 << 16)
        except TimeoutError:
            self._check_health()
            return []
        self._received(data)
        return self._take(limit)

    def read_ready(self, limit: int) -> list:
        """At most `limit` replies, of what has arrived by now; never waits."""
        replies = self._take(limit)
        self._sock.settimeout(0)
        try:
            while len(replies) < limit:
                try:
                    data = self._sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    break
                self._received(data)
                replies += self._take(limit - len(replies))
                if len(data) < 1 << 16:
                    break  # a short read emptied the kernel's buffer: no recv just to hear EAGAIN
        finally:
            self._sock.settimeout(READ_TIMEOUT)
        return replies

    def _received(self, data: bytes) -> None:
        """Hand what one recv brought to the parser; b"" means Redis hung up."""
        if not data:
            raise redis.ConnectionError("Redis closed the listener's connection")
        self._heard, self._pinged = time.monotonic(), False
        self._reader.feed(data)

    def _take(self, limit: int) -> list:
        replies = []
        while len(replies) < limit:
            reply = self._reader.gets()
            if reply is False:
                break
            if isinstance(reply, Exception):  # an error reply: this connection is not what we think it is
                raise redis.ResponseError(str(reply))
            replies.append(reply)
        return replies

    def _check_health(self) -> None:
        silent = time.monotonic() - self._heard
        if silent >= 2 * HEALTH_INTERVAL and self._pinged:
            raise redis.ConnectionError(f"Redis has not answered the listener's PING for {silent:.0f} s")
        if silent >= HEALTH_INTERVAL and not self._pinged:
            self.send("PING")  # answered as [b"pong", b""] in subscribed mode
            self._pinged = True

    def close(self) -> None:
        try:
            self._connection.disconnect()
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass


class Hub:
    """`audience(channel)` → how that channel's viewer count reads (count → HTML,
    called on the listener's thread), or None for a channel nobody counts: one
    person's feeds, a call's two pages. No `audience`: nothing is counted, and
    nothing is coalesced. `max_connections` bounds the hub's own Redis pool (for
    presence and wake-ups; the listener has its own connection)."""

    def __init__(self, redis_url: str, audience=None, prefix: str = PREFIX,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS):
        self.redis_url = redis_url
        self.prefix = prefix
        self._subs: dict[str, set[Subscriber]] = {}
        self._lock = threading.Lock()
        self._live: set[str] = set()  # channels whose SUBSCRIBE Redis confirmed (none sent since)
        self._dirty: set[str] = set()  # channels whose first socket joined or last left
        self._waiting: dict[str, threading.Event] = {}  # set when the channel is live
        token = uuid.uuid4().hex
        self._control = f"{prefix}hub:{token}"
        self.listener_name = f"{prefix}hub-listener:{token}"  # CLIENT SETNAME of the listener's connection
        self._member = uuid.uuid4().hex[:12] + ":"  # presence member = this + Subscriber.id
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._audience = audience
        self._coalesce: dict[str, bool] = {}  # the listener's cache of `audience(c) is not None`
        self._last_counts: dict[str, int] = {}
        self._sockets = 0
        self.received = 0  # messages the listener read from Redis (its control channel aside)
        self.connected = threading.Event()  # set while the listener's connection is confirmed
        self._outage = threading.Event()  # set while the listener can't reach Redis
        # For presence writes and wake-ups from socket threads (redis-py clients are thread-safe).
        self._client = bounded_client(redis_url, max_connections, socket_connect_timeout=0.5, socket_timeout=1)
        self._presence_script = self._client.register_script(_PRESENCE_TICK)

    # ---- sockets ---------------------------------------------------------------

    def subscribe(self, channels: tuple[str, ...]) -> Subscriber:
        """A new inbox for `channels`. Returns once every message published to
        them from now on will reach it (waits at most `SUBSCRIBE_WAIT`; not at
        all while Redis is unreachable)."""
        sub = Subscriber(channels)
        waits: list[threading.Event] = []
        new_channel = False
        with self._lock:
            self._sockets += 1
            for channel in channels:
                members = self._subs.get(channel)
                if members is None:
                    members = self._subs[channel] = set()
                    if not channel.startswith(CREDENTIAL_FEEDS):
                        self._dirty.add(channel)
                        new_channel = True
                members.add(sub)
                if channel.startswith(CREDENTIAL_FEEDS):
                    continue  # the listener's pattern: live whenever `connected` is
                if channel not in self._live:
                    event = self._waiting.get(channel)
                    if event is None:
                        event = self._waiting[channel] = threading.Event()
                    waits.append(event)
        if any(c.startswith(CREDENTIAL_FEEDS) for c in channels):
            waits.append(self.connected)
        self._ensure_listener()
        if new_channel:
            self._wake_listener()
        self._presence_add(sub)
        # Everything published after we return must reach `sub`: the caller reads
        # the state *after* subscribing.
        deadline = time.monotonic() + SUBSCRIBE_WAIT
        for event in waits:
            while (not event.wait(0.05) and not self._outage.is_set()
                   and time.monotonic() < deadline):
                pass
        return sub

    def hand_over(self, sub: Subscriber, sink) -> None:
        """From now on the hub serves `sub`'s socket itself: what waits in its
        inbox, then every message, goes to `sink.offer` (detached.Connection),
        and `sink.tick(now)` runs about every second. Under gevent only: nothing
        here or in the sink yields, so no message slips between the inbox and
        the sink."""
        items, sub._items = sub._items, []
        sub.sink = sink
        if sub.dropped:
            sink.offer(RESYNC)  # the inbox overflowed while the state was sent: start again
            return
        for item in items:
            sink.offer(item)

    def unsubscribe(self, sub: Subscriber) -> None:
        """Remove `sub`; a channel's last local socket leaving ends its subscription."""
        with self._lock:
            self._sockets -= 1
            for channel in sub.channels:
                members = self._subs.get(channel)
                if members is not None:
                    members.discard(sub)
                    if not members:
                        del self._subs[channel]
                        if not channel.startswith(CREDENTIAL_FEEDS):
                            self._dirty.add(channel)  # the listener unsubscribes on its next turn
        self._presence_remove(sub)

    def viewer_count(self, channel: str) -> int | None:
        """Viewers of `channel` across all instances (None while Redis is unavailable)."""
        try:
            return int(self._client.zcount(self._presence_key(channel), time.time() - PRESENCE_TTL, "+inf"))
        except (redis.RedisError, OSError):
            return None

    def viewer_counts(self, channels) -> dict[str, int | None]:
        """`viewer_count` of many channels in one round trip (Discover's cards); every
        count is None while Redis is unavailable."""
        channels = list(channels)
        if not channels:
            return {}
        since = time.time() - PRESENCE_TTL
        try:
            pipe = self._client.pipeline(transaction=False)
            for channel in channels:
                pipe.zcount(self._presence_key(channel), since, "+inf")
            return {c: int(n) for c, n in zip(channels, pipe.execute())}
        except (redis.RedisError, OSError):
            return dict.fromkeys(channels)

    def local_count(self, channel: str) -> int:
        with self._lock:
            return len(self._subs.get(channel, ()))

    # ---- listener ----------------------------------------------------------------

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="realtime-hub", daemon=True)
                self._thread.start()

    def _wake_listener(self) -> None:
        """Have the listener apply a new channel now rather than at its next timeout."""
        try:
            self._client.publish(self._control, b"")
        except (redis.RedisError, OSError):
            pass  # the listener is down too; it applies every channel when it is back

    def stop(self) -> None:
        self._stopping.set()
        self._client.close()

    def _run(self) -> None:
        backoff = 0.2
        next_presence = next_wake = 0.0
        missed = False  # events may have been published while we weren't subscribed
        peak = 0  # most local sockets since memory was last given back
        last_round = 0.0  # when messages were last delivered
        while not self._stopping.is_set():
            feed = None
            try:
                feed = _Feed(self.redis_url, self.listener_name)
                with self._lock:
                    # A new connection holds no subscriptions: every channel with local sockets is subscribed anew.
                    self._live.clear()
                    self._dirty.update(c for c in self._subs if not c.startswith(CREDENTIAL_FEEDS))
                requested: set[str] = set()  # channels whose last request sent was SUBSCRIBE
                unanswered: dict[str, int] = {}  # requests sent per channel, not yet answered
                confirmed = 0  # of the control channel and the credential pattern
                busy = False  # the last turn delivered messages
                feed.send("SUBSCRIBE", self._control)
                feed.send("PSUBSCRIBE", self.prefix + CREDENTIAL_FEEDS + "*")
                prefixed = len(self.prefix)
                while not self._stopping.is_set():
                    self._apply(feed, requested, unanswered)
                    batch = []
                    if busy:
                        # The last turn delivered: the next round is due ROUND_INTERVAL after it
                        # and takes what arrived meanwhile (no wait for more, no timer per read).
                        pause = last_round + ROUND_INTERVAL - time.monotonic()
                        if pause > 0:
                            time.sleep(pause)
                        replies = feed.read_ready(READ_BATCH)
                    else:
                        # Whatever Redis already sent (waiting READ_TIMEOUT at most for the first).
                        replies = feed.read(READ_BATCH)
                    for reply in replies:
                        kind = reply[0]
                        if kind == b"message":
                            channel = reply[1].decode()
                            if channel != self._control:
                                batch.append((channel[prefixed:], reply[2]))
                        elif kind == b"pmessage":
                            batch.append((reply[2].decode()[prefixed:], reply[3]))
                        elif kind == b"subscribe" or kind == b"unsubscribe":
                            channel = reply[1].decode()
                            if channel == self._control:
                                confirmed += 1
                            else:
                                self._answered(channel[prefixed:], kind.decode(), requested, unanswered)
                        elif kind == b"psubscribe":
                            confirmed += 1
                    busy = bool(batch)
                    if busy:
                        self.received += len(batch)
                        self._dispatch(batch)
                        last_round = time.monotonic()
                    if confirmed == 2 and not self.connected.is_set():
                        # Confirmed by Redis: from now on every PUBLISH to our channels reaches us.
                        self._outage.clear()
                        self.connected.set()
                        backoff = 0.2
                    if missed and self.connected.is_set() and not unanswered:
                        log.info("realtime hub: reconnected to Redis; local sockets resync")
                        self._resync_all()
                        missed = False
                    now = time.monotonic()
                    if now >= next_wake:
                        next_wake = now + WAKE_INTERVAL
                        peak = self._give_back_memory(peak)
                        self._wake_all()
                    if now >= next_presence:
                        next_presence = now + PRESENCE_INTERVAL
                        self._presence_tick()
            except (redis.RedisError, OSError) as exc:
                self.connected.clear()
                self._outage.set()
                with self._lock:
                    self._live.clear()
                    waiting, self._waiting = self._waiting, {}
                for event in waiting.values():
                    event.set()  # nobody waits for Redis during an outage
                missed = True
                log.warning("realtime hub: Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                self._wake_all()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if feed is not None:
                    feed.close()

    def _apply(self, feed: "_Feed", requested: set[str], unanswered: dict[str, int]) -> None:
        """Send SUBSCRIBE for dirty channels that now have local sockets and
        UNSUBSCRIBE for those that have none (listener thread only)."""
        if not self._dirty:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            joined = [c for c in dirty if c in self._subs and c not in requested]
            left = [c for c in dirty if c not in self._subs and c in requested]
            # Decided under the lock: a socket joining from now on finds the channel
            # not live and waits for its new SUBSCRIBE.
            self._live.difference_update(left)
        requested.update(joined)
        requested.difference_update(left)
        for channels, command in ((joined, "SUBSCRIBE"), (left, "UNSUBSCRIBE")):
            for i in range(0, len(channels), SUBSCRIBE_BATCH):
                chunk = channels[i:i + SUBSCRIBE_BATCH]
                feed.send(command, *(self.prefix + c for c in chunk))
                for c in chunk:
                    unanswered[c] = unanswered.get(c, 0) + 1
        for c in left:
            self._coalesce.pop(c, None)
            self._last_counts.pop(c, None)

    def _answered(self, channel: str, kind: str, requested: set[str], unanswered: dict[str, int]) -> None:
        """Redis answered one (UN)SUBSCRIBE of `channel`: live once all are answered
        and the last one sent was a SUBSCRIBE."""
        left = unanswered.get(channel, 0) - 1
        if left > 0:
            unanswered[channel] = left
            return
        unanswered.pop(channel, None)
        if channel in requested:
            with self._lock:
                self._live.add(channel)
                event = self._waiting.pop(channel, None)
            if event is not None:
                event.set()

    def _local_subscribers(self) -> set[Subscriber]:
        with self._lock:
            return {sub for subs in self._subs.values() for sub in subs}

    def _resync_all(self) -> None:
        for sub in self._local_subscribers():
            sub.offer(RESYNC)

    def _wake_all(self) -> None:
        now = time.monotonic()
        for sub in self._local_subscribers():
            sub.wake(now)

    def _coalesces(self, channel: str) -> bool:
        coalesce = self._coalesce.get(channel)
        if coalesce is None:
            coalesce = self._coalesce[channel] = self._audience is not None and self._audience(channel) is not None
        return coalesce

    def _dispatch(self, batch: list[tuple[str, bytes]]) -> None:
        """Deliver messages read together: per channel, in order; a channel with an
        audience gets them as one frame."""
        if len(batch) == 1:
            by_channel = {batch[0][0]: [batch[0][1]]}
        else:
            by_channel = {}
            for channel, data in batch:
                by_channel.setdefault(channel, []).append(data)
        written = 0  # socket writes since the listener last yielded
        for channel, messages in by_channel.items():
            with self._lock:
                targets = list(self._subs.get(channel, ()))
            if not targets:
                continue
            if channel.startswith(CREDENTIAL_FEEDS):
                frames = [ENDED]
            elif len(messages) > 1 and self._coalesces(channel):
                frames = [text_frame(b"\n".join(messages))]
            else:
                # Redis hands us the UTF-8 bytes the frame carries
                frames = [text_frame(data) for data in messages]
            for frame in frames:
                queued = False
                for sub in targets:
                    if sub.offer(frame):
                        queued = True
                    written += 1
                    if written >= YIELD_AFTER_WRITES:
                        # Sockets the hub writes to itself need no turn, but requests must
                        # get one now and then (a frame to 5,000 sockets is ~20 ms of sends).
                        time.sleep(0)
                        written = 0
                if queued:
                    # Let the sockets run. In a burst the listener reads message after message
                    # from its buffer without a syscall, so without yielding it would fill every
                    # inbox — dropping fast sockets too — before any of them got the GIL (or,
                    # under gevent, before any other greenlet ran).
                    time.sleep(0)
                    written = 0

    # ---- memory ------------------------------------------------------------------

    def _give_back_memory(self, peak: int) -> int:
        """After many sockets have left, return their memory to the OS; → the new peak."""
        now = self._sockets
        if now > peak:
            return now
        if peak - now >= TRIM_AFTER_LEAVING and now < peak // 2:
            started = time.monotonic()
            # Their objects may sit in cycles that the raised gc threshold (gunicorn.conf.py)
            # leaves for a long while; glibc keeps freed arenas unless asked.
            gc.collect()
            _malloc_trim()
            log.info("realtime hub: %d of %d sockets left; memory given back in %.0f ms",
                     peak - now, peak, (time.monotonic() - started) * 1000)
            return now
        return peak

    # ---- presence ----------------------------------------------------------------

    def _presence_key(self, channel: str) -> str:
        return f"{self.prefix}viewers:{channel}"

    def _presence_add(self, sub: Subscriber) -> None:
        member = self._member + str(sub.id)
        self._presence_write(lambda pipe: [pipe.zadd(self._presence_key(c), {member: time.time()})
                                           for c in sub.channels])

    def _presence_remove(self, sub: Subscriber) -> None:
        member = self._member + str(sub.id)
        self._presence_write(lambda pipe: [pipe.zrem(self._presence_key(c), member) for c in sub.channels])

    def _presence_write(self, fill) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            fill(pipe)
            pipe.execute()
        except (redis.RedisError, OSError):
            pass  # presence is best effort; the next tick repairs it

    def _presence_tick(self) -> None:
        """Refresh our sockets' heartbeats, expire stale ones, push counts that changed."""
        if self._audience is None:
            return
        with self._lock:
            counted = [(c, render, [s.id for s in subs]) for c, subs in self._subs.items()
                       if (render := self._audience(c)) is not None]
        if not counted:
            return
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        for channel, _render, ids in counted:
            # One script call a channel rather than four commands: with a hundred rooms
            # live, redis-py's per-command work was most of an idle process's CPU.
            self._presence_script(keys=[self._presence_key(channel)], client=pipe,
                                  args=[now, now - PRESENCE_TTL, int(PRESENCE_TTL * 2),
                                        *(self._member + str(i) for i in ids)])
        results = pipe.execute()
        for i, (channel, render, _ids) in enumerate(counted):
            count = int(results[i])
            if self._last_counts.get(channel) != count:
                self._last_counts[channel] = count
                frame = text_frame(render(count).encode())
                with self._lock:
                    targets = list(self._subs.get(channel, ()))
                for sub in targets:
                    sub.offer(frame)


def _load_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_trim = _load_malloc_trim()


def _malloc_trim() -> None:
    if _trim is not None:
        _trim(0)
