"""Join snapshots: the part of a channel's connect state that is the same for every
viewer, cached in Redis and kept current by the publishers.

Design note
-----------
A (re)connect of a stream's socket sends its state: status, recent tips, chat
history, goal bar, leaderboard — a dozen queries. A join storm of 10,000 viewers
would run them 10,000 times for the same HTML. A channel registered with
`snapshot=True` (channels.py) promises its connect state depends on the channel
alone (not on who joins; the viewer count is added per join, outside the
snapshot), and this module serves it from Redis, rendering from PostgreSQL only
on a miss.

* **One hash per channel**, `<prefix>snap:<channel>`: `g` the channel's
  generation, `h` the cached HTML, `hg` the generation read *before* `h` was
  rendered, `at` when that render began. Every publish on the channel (bus.py's
  scripts) raises `g` by one in the same script call as, and before, its
  PUBLISH; a change shown in the state but announced some other way calls
  `bus.snapshot_changed`. One key, so the generation and the HTML expire
  together (`TTL`, renewed by every publish and store): a generation never
  starts again from 0 under a cached HTML.
* **A hit** (one round trip, after the socket subscribed): `hg == g` (no `g`
  counts as 0) and `at` younger than `MAX_AGE`. Each process keeps the last HTML
  it got per channel with its (`hg`, `at`), and `_READ` sends `h` only when the
  hash holds another render than that: a storm of joins moves a few bytes per
  join from Redis, not the whole state.
* **Why a hit misses nothing.** Let E be an event PUBLISHed before the socket's
  subscription was confirmed. E's script raised `g` to some e before the
  PUBLISH, so the HMGET (after the confirmation) reads g >= e. On a hit, `h` was
  rendered by someone who read `hg` = g >= e *before* rendering: their read came
  after E's script, hence after E's commit (publishers publish after commit),
  so their PostgreSQL reads saw it. Events after the confirmation reach the
  socket through the hub. An event whose publish failed (Redis unreachable from
  the publisher) raised nothing: its viewers miss it and a join may too, for at
  most `MAX_AGE` (the hub's RESYNC after an outage renders afresh: `fresh=True`).
* **A miss** reads `g` first, renders from PostgreSQL, then stores (h, hg=that
  g, at) only if `g` has not moved meanwhile (`_STORE`; a moved one would be a
  miss for everyone anyway).
* **One render at a time per channel and process** (`_Flight`). A joiner that
  misses waits for the render in progress if that render is good for it: it
  began after the joiner subscribed (its reads are later than the
  subscription, as sockets.serve requires of any state), or it read the same
  generation the joiner's HMGET did (nothing was published in between).
  Otherwise the joiner renders next. A storm of joins in one process costs one
  render, and a storm of joins during a storm of tips one render per render's
  time, not one per join.
* **`MAX_AGE`**: what no publisher announces — a renamed user, the creator's
  message filter, the 30-day crown (each already cached a few seconds to a
  minute per process) — shows on a join at most `MAX_AGE` later than before.
* **Redis down**: the read fails and the state is rendered from PostgreSQL (one
  render at a time still); a failed store is ignored. A join never fails
  because of the cache. `SNAPSHOT_CACHE=0` turns the cache off (bench/joins.py
  compares).
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from flask import current_app
from redis import RedisError

from app.redis_client import get_redis

MAX_AGE = 5.0  # seconds a cached state is served at most, whatever the generation says
TTL = 24 * 3600  # seconds an idle channel's snapshot key lives (renewed by each publish and store)


def snapshot_key(prefix: str, channel: str) -> str:
    return f"{prefix}snap:{channel}"


# KEYS[1] the snapshot hash; ARGV: the generation read before rendering, the HTML,
# when the render began, the TTL. Stored only if no publish came in between.
_STORE = """
if (redis.call('HGET', KEYS[1], 'g') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'h', ARGV[2], 'hg', ARGV[1], 'at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


# KEYS[1] the snapshot hash; ARGV: the (hg, at) of the render this process holds.
# → g, hg, at, and h unless the hash holds that same render.
_READ = """
local v = redis.call('HMGET', KEYS[1], 'g', 'hg', 'at')
if v[2] ~= ARGV[1] or v[3] ~= ARGV[2] then v[4] = redis.call('HGET', KEYS[1], 'h') end
return v
"""
_LOCAL_MAX = 512  # channels whose last render (tens of KB each) a process keeps; emptied when full


class _Flight:
    """One render of a channel's state in one process, shared with the joiners it is good for."""

    __slots__ = ("began", "gen", "done", "html", "ok")

    def __init__(self):
        self.began = time.monotonic()
        self.gen: bytes | None = None  # the generation read before rendering (None: Redis unreadable)
        self.done = threading.Event()
        self.html: str | None = None
        self.ok = False

    def serves(self, since: float, gen: bytes | None) -> bool:
        """Good for a joiner that subscribed at `since` and then read generation `gen`."""
        return self.began >= since or (gen is not None and self.gen == gen)


class Snapshots:
    """One app's join snapshots (see the design note). Thread- and greenlet-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._local: dict[str, tuple[bytes, bytes, str]] = {}  # channel → (hg, at, html) last read or stored
        self._scripts = {}

    def state(self, channel: str, render: Callable[[], str | None], since: float, fresh: bool = False) -> str | None:
        """The shared connect state of `channel` for a socket subscribed at `since`
        (time.monotonic(), taken after the hub confirmed the subscription):
        cached, or `render()` (in a fresh DB session) by this or a concurrent
        joiner. `fresh`: skip the cache (after a Redis outage, when publishes may
        have failed without raising the generation). Raises what `render` raises."""
        gen = None
        if not fresh:
            held = self._local.get(channel)
            try:
                g, hg, at, *html = self._script(_READ)(keys=[self._key(channel)],
                                                       args=held[:2] if held else ["", ""])
            except RedisError:
                pass  # render from PostgreSQL, as without a cache
            else:
                gen = g or b"0"
                if hg == gen and time.time() - float(at) < MAX_AGE:
                    if html and html[0] is not None:
                        state = html[0].decode()
                        self._hold(channel, hg, at, state)
                        return state or None
                    if held:  # the hash holds the render we hold
                        return held[2] or None
        return self._render_once(channel, render, since, gen)

    def _render_once(self, channel: str, render, since: float, gen: bytes | None) -> str | None:
        while True:
            with self._lock:
                flight = self._flights.get(channel)
                if flight is None:
                    flight = self._flights[channel] = _Flight()
                    break
            flight.done.wait()
            if flight.ok and flight.serves(since, gen):
                return flight.html
            # Begun before we subscribed, on an older generation (or it failed): render next.
        try:
            flight.html = self._render(channel, render, flight)
            flight.ok = True
            return flight.html
        finally:
            with self._lock:
                del self._flights[channel]
            flight.done.set()

    def _render(self, channel: str, render, flight: _Flight) -> str | None:
        key = self._key(channel)
        redis = get_redis()
        try:
            flight.gen = redis.hget(key, "g") or b"0"
        except RedisError:
            flight.gen = None
        began = time.time()
        html = render()
        if flight.gen is not None:
            try:
                if self._script(_STORE)(keys=[key], args=[flight.gen, html or "", repr(began), TTL]):
                    self._hold(channel, flight.gen, repr(began).encode(), html or "")
            except RedisError:
                pass  # the next join renders again
        return html

    def _hold(self, channel: str, hg: bytes, at: bytes, html: str) -> None:
        if len(self._local) >= _LOCAL_MAX:
            self._local.clear()
        self._local[channel] = (hg, at, html)

    def _script(self, source: str):
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = get_redis().register_script(source)
        return script

    @staticmethod
    def _key(channel: str) -> str:
        return snapshot_key(current_app.config["REDIS_PREFIX"], channel)
