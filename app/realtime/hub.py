"""The per-process realtime hub: Redis pub/sub in, WebSockets out.

Design note
-----------
Web instances are stateless, so an event committed on instance A must reach a
viewer connected to instance B: every event is PUBLISHed to Redis
(`<prefix><channel>`, prefix `pm:` by default), and each web process runs exactly one listener thread that
PSUBSCRIBEs to `<prefix>*` and hands each message to the sockets *this* process
holds for that channel.

* **Bounded per-socket queues.** The listener never blocks on a socket: it
  `put_nowait`s into each subscriber's queue (`QUEUE_SIZE` messages). A
  subscriber whose queue is full is marked dropped; its socket loop closes
  the connection (the browser reconnects and re-syncs). One slow phone never
  delays the other viewers. The listener yields after each delivered message
  so that, in a burst, sockets that keep up get to drain their queues.
* **Redis outages.** The listener reconnects with backoff, so after Redis
  comes back events flow again without restarting the app. Publishing while
  Redis is down logs and returns False: the money has already committed.
  Events published during the outage are lost, so once the listener is back
  every local socket is offered `RESYNC` and re-sends its state (as on a
  reconnect): a missed message never leaves a page stale.
* **No gap at subscribe.** `subscribe()` returns only once the listener's
  PSUBSCRIBE is confirmed by Redis (bounded wait; no wait during an outage),
  so a socket that subscribes and *then* reads its state from the database
  misses nothing committed in between.
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

Pattern-subscribing to everything means every process sees every event; a
process drops those with no local subscriber after one dict lookup. That is
fine at this product's event rates and keeps subscription bookkeeping out of
the hot path.
"""
from __future__ import annotations

import logging
import queue
import struct
import threading
import time
import uuid
from collections import defaultdict

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

PREFIX = "pm:"  # default namespace; deployments may set REDIS_PREFIX
CREDENTIAL_FEEDS = "auth:"  # see bus.credential_channel
QUEUE_SIZE = 256
PRESENCE_INTERVAL = 5.0
PRESENCE_TTL = 60.0
SUBSCRIBE_WAIT = 2.0  # longest a new socket waits for a cold listener to be subscribed

WAKE_INTERVAL = 1.0  # how often idle inboxes are woken to check their socket

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


class Subscriber:
    """One socket's inbox: frames (bytes, from `text_frame`), `RESYNC`, `WAKE` or `ENDED`."""

    __slots__ = ("id", "channels", "queue", "dropped")

    def __init__(self, channels: tuple[str, ...]):
        self.id = uuid.uuid4().hex
        self.channels = channels
        self.queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self.dropped = False

    def offer(self, message) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            self.dropped = True  # the socket loop closes it; never block the listener

    def wake(self) -> None:
        if self.queue.empty():  # a busy inbox wakes its loop anyway
            try:
                self.queue.put_nowait(WAKE)
            except queue.Full:
                pass


class Hub:
    """`audience(channel)` → how that channel's viewer count reads (count → HTML,
    called on the listener's thread), or None for a channel nobody counts: one
    person's feeds, a call's two pages. No `audience`: nothing is counted."""

    def __init__(self, redis_url: str, audience=None, prefix: str = PREFIX):
        self.redis_url = redis_url
        self.prefix = prefix
        self._subs: dict[str, set[Subscriber]] = defaultdict(set)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._audience = audience
        self._last_counts: dict[str, int] = {}
        self.connected = threading.Event()  # set while the listener's PSUBSCRIBE is confirmed
        self._outage = threading.Event()  # set while the listener can't reach Redis
        # For presence writes from socket threads (redis-py clients are thread-safe).
        self._client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=1)

    # ---- sockets ---------------------------------------------------------------

    def subscribe(self, channels: tuple[str, ...]) -> Subscriber:
        sub = Subscriber(channels)
        with self._lock:
            for channel in channels:
                self._subs[channel].add(sub)
        self._ensure_listener()
        self._presence_add(sub)
        # Everything published after we return must reach `sub`: the caller reads
        # the state *after* subscribing. A cold listener may not have subscribed yet.
        deadline = time.monotonic() + SUBSCRIBE_WAIT
        while (not self.connected.wait(0.02) and not self._outage.is_set()
               and time.monotonic() < deadline):
            pass
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            for channel in sub.channels:
                members = self._subs.get(channel)
                if members is not None:
                    members.discard(sub)
                    if not members:
                        del self._subs[channel]
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

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        backoff = 0.2
        next_presence = next_wake = 0.0
        missed = False  # events may have been published while we weren't subscribed
        while not self._stopping.is_set():
            pubsub = None
            try:
                # No silent retries inside redis-py: a dropped connection must surface
                # here, or events lost while it reconnected would go unnoticed.
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, health_check_interval=5,
                                              retry=Retry(NoBackoff(), 0))
                pubsub = client.pubsub()
                pubsub.psubscribe(self.prefix + "*")
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None:
                        if message["type"] == "pmessage":
                            self._dispatch(message["channel"], message["data"])
                        elif message["type"] == "psubscribe":
                            # Confirmed by Redis: from now on every PUBLISH reaches us.
                            self._outage.clear()
                            self.connected.set()
                            backoff = 0.2
                            if missed:
                                log.info("realtime hub: reconnected to Redis; local sockets resync")
                                self._resync_all()
                                missed = False
                    if time.monotonic() >= next_wake:
                        next_wake = time.monotonic() + WAKE_INTERVAL
                        self._wake_all()
                    if time.monotonic() >= next_presence:
                        next_presence = time.monotonic() + PRESENCE_INTERVAL
                        self._presence_tick(client)
            except (redis.RedisError, OSError) as exc:
                self.connected.clear()
                self._outage.set()
                missed = True
                log.warning("realtime hub: Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                self._wake_all()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001 - closing a dead connection
                        pass

    def _local_subscribers(self) -> set[Subscriber]:
        with self._lock:
            return {sub for subs in self._subs.values() for sub in subs}

    def _resync_all(self) -> None:
        for sub in self._local_subscribers():
            sub.offer(RESYNC)

    def _wake_all(self) -> None:
        for sub in self._local_subscribers():
            sub.wake()

    def _dispatch(self, raw_channel: bytes, data: bytes) -> None:
        channel = raw_channel.decode()[len(self.prefix):]
        with self._lock:
            targets = list(self._subs.get(channel, ()))
        if targets:
            # Redis hands us the UTF-8 bytes the frame carries
            frame = ENDED if channel.startswith(CREDENTIAL_FEEDS) else text_frame(data)
            for sub in targets:
                sub.offer(frame)
            # Let the sockets run. In a burst the listener reads message after message
            # from its buffer without a syscall, so without yielding it would fill every
            # queue — dropping fast sockets too — before any of them got the GIL (or,
            # under gevent, before any other greenlet ran).
            time.sleep(0)

    # ---- presence ----------------------------------------------------------------

    def _presence_key(self, channel: str) -> str:
        return f"{self.prefix}viewers:{channel}"

    def _presence_add(self, sub: Subscriber) -> None:
        self._presence_write(lambda pipe: [pipe.zadd(self._presence_key(c), {sub.id: time.time()})
                                           for c in sub.channels])

    def _presence_remove(self, sub: Subscriber) -> None:
        self._presence_write(lambda pipe: [pipe.zrem(self._presence_key(c), sub.id) for c in sub.channels])

    def _presence_write(self, fill) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            fill(pipe)
            pipe.execute()
        except (redis.RedisError, OSError):
            pass  # presence is best effort; the next tick repairs it

    def _presence_tick(self, client: redis.Redis) -> None:
        """Refresh our sockets' heartbeats, expire stale ones, push counts that changed."""
        if self._audience is None:
            return
        with self._lock:
            counted = [(c, render, [s.id for s in subs]) for c, subs in self._subs.items()
                       if (render := self._audience(c)) is not None]
        if not counted:
            return
        now = time.time()
        pipe = client.pipeline(transaction=False)
        for channel, _render, ids in counted:
            key = self._presence_key(channel)
            pipe.zadd(key, dict.fromkeys(ids, now))
            pipe.zremrangebyscore(key, 0, now - PRESENCE_TTL)
            pipe.zcard(key)
            pipe.expire(key, int(PRESENCE_TTL * 2))
        results = pipe.execute()
        for i, (channel, render, _ids) in enumerate(counted):
            count = int(results[i * 4 + 2])
            if self._last_counts.get(channel) != count:
                self._last_counts[channel] = count
                frame = text_frame(render(count).encode())
                with self._lock:
                    targets = list(self._subs.get(channel, ()))
                for sub in targets:
                    sub.offer(frame)
