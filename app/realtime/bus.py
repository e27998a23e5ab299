"""Publishing realtime events: HTML fragments to a channel, after the commit.

`publish` never raises: Redis being down loses the overlay, not the money
(the caller has already committed). Channels: a name some feature serves
(channels.py), or `user:<id>` for one user's own feed (`/ws/me`).

A message to a `snapshot` channel (a stream's) also raises that channel's
snapshot generation, in the same script call and before the PUBLISH, so no join
is served a cached state older than a message it did not get (snapshot.py).
"""
from __future__ import annotations

import queue
import secrets
import threading
from dataclasses import dataclass

from redis import RedisError

from flask import current_app

from app.realtime.snapshot import TTL as SNAPSHOT_TTL, snapshot_key
from app.redis_client import get_redis, report_failure, report_recovery


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def credential_channel(kind: str, credential_id: int) -> str:
    """Where the end of a login session (`kind` "session") or API token ("token")
    is announced: sockets opened with it listen there and close (hub.ENDED)."""
    return f"auth:{kind}:{credential_id}"


def credentials_ended(kind: str, ids) -> bool:
    """Close every socket opened with these sessions or tokens, on every instance."""
    return publish_many([(credential_channel(kind, i), "ended") for i in ids])


def publish(channel: str, html: str) -> bool:
    """Send `html` to every socket on `channel` on every instance; False if Redis is down."""
    return publish_many([(channel, html)])


def publish_many(messages: list[tuple[str, str]]) -> bool:
    """Publish several (channel, html) messages in one round trip to Redis."""
    if not messages:
        return True
    prefix = current_app.config["REDIS_PREFIX"]
    try:
        # One script call rather than a pipeline of PUBLISHes: the meter sends
        # ~20,000 messages a tick, and a pipeline costs ~15 µs of Python per command.
        _script(_PUBLISH_ALL, "realtime_publish_script")(
            keys=_snapshot_keys(prefix, messages),
            args=[part for channel, html in messages for part in (prefix + channel, html)])
        report_recovery()
        return True
    except RedisError as exc:
        _undelivered(messages, exc)
        return False


def snapshot_changed(channels) -> bool:
    """The connect state of `channels` changed (committed) and what announces it is
    not published through this module (another feature's own script): raise their
    snapshot generations, so joins render it afresh. Call before that PUBLISH. False
    if Redis is down (the snapshots then live at most snapshot.MAX_AGE)."""
    keys = _snapshot_keys(current_app.config["REDIS_PREFIX"], [(c, "") for c in channels])
    if not keys:
        return True
    try:
        _script(_PUBLISH_ALL, "realtime_publish_script")(keys=keys, args=[])
        return True
    except RedisError as exc:
        report_failure("realtime: snapshots of " + ", ".join(channels) + " not invalidated", exc)
        return False


def _snapshot_keys(prefix: str, messages) -> list[str]:
    """The snapshot keys of the channels among `messages` that have one (once each)."""
    snapshotted = current_app.extensions["realtime_channels"].snapshot_prefixes
    return [snapshot_key(prefix, channel)
            for channel in dict.fromkeys(channel for channel, _html in messages if channel.startswith(snapshotted))]


# KEYS: snapshot hashes whose generation goes up (snapshot.py), first, in the same call.
_BUMP_SNAPSHOTS = """
for i = {first}, #KEYS do
    redis.call('HINCRBY', KEYS[i], 'g', 1)
    redis.call('EXPIRE', KEYS[i], {ttl})
end
"""

_PUBLISH_ALL = _BUMP_SNAPSHOTS.format(first=1, ttl=SNAPSHOT_TTL) + """
for i = 1, #ARGV, 2 do
    redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
"""


def _script(source: str, name: str):
    """`source` registered once per app (redis-py loads it on first use, again after a flush)."""
    script = current_app.extensions.get(name)
    if script is None:
        script = current_app.extensions[name] = get_redis().register_script(source)
    return script


# A placeholder for a counter's value inside a rendered message. Random per
# process, so text a user typed (a tip message, say) can never contain it.
COUNT = f"count-{secrets.token_hex(8)}"

# KEYS[1]: the counter. ARGV[1]: how many claims, c. Claims first (KEYS[2..c+1], each
# `SET NX EX` with its seconds in ARGV[2..c+1]; which were won comes back after the
# count), then the snapshots of the channels published to (KEYS[c+2..], as in
# _PUBLISH_ALL), then INCR the counter and publish each message (ARGV[c+2..]) with its
# last COUNT replaced by the new value: a counter, the messages showing it, their
# snapshots' invalidation and the claims in one round trip.
_COUNT_AND_PUBLISH = """
local c = tonumber(ARGV[1])
local won = {}
for i = 2, c + 1 do
    won[i - 1] = redis.call('SET', KEYS[i], 1, 'NX', 'EX', ARGV[i]) and 1 or 0
end
local first = c + 2
""" + _BUMP_SNAPSHOTS.format(first="c + 2", ttl=SNAPSHOT_TTL) + """
local n = redis.call('INCR', KEYS[1])
for i = first, #ARGV, 3 do
    if ARGV[i + 2] == '' then
        redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
    else
        redis.call('PUBLISH', ARGV[i], ARGV[i + 1] .. n .. ARGV[i + 2])
    end
end
return {n, unpack(won)}
"""


@dataclass(frozen=True)
class Claim:
    """A key (with the prefix) that whoever sets it first owns for `seconds`: a feature's
    "one refresh queued at a time" (app/goals, app/wallet), taken in a publish's round trip."""
    key: str
    seconds: int


def count_and_publish(counter: str, messages: list[tuple[str, str]]) -> bool:
    """Increment `counter` (a key without the prefix) and publish `messages`,
    where `COUNT` in a message stands for the counter's new value; one round
    trip. False if Redis is down: nothing is counted or delivered."""
    return count_publish_and_claim(counter, messages, ()) is not None


def count_publish_and_claim(counter: str, messages: list[tuple[str, str]],
                            claims: list[Claim]) -> list[bool] | None:
    """`count_and_publish`, and in the same round trip try each of `claims` (`SET NX EX`):
    whether each was won, in order. None if Redis is down: nothing is counted, delivered
    or claimed (so no caller queues work on a claim it cannot hold)."""
    args = [len(claims), *(claim.seconds for claim in claims)]
    prefix = current_app.config["REDIS_PREFIX"]
    for channel, html in messages:
        head, found, tail = html.rpartition(COUNT)
        args += [prefix + channel, head, tail] if found else [prefix + channel, html, ""]
    try:
        reply = _script(_COUNT_AND_PUBLISH, "realtime_count_script")(
            keys=[prefix + counter, *(claim.key for claim in claims), *_snapshot_keys(prefix, messages)],
            args=args)
        report_recovery()
        return [bool(won) for won in reply[1:]]
    except RedisError as exc:
        _undelivered(messages, exc)
        return None


def _undelivered(messages, exc) -> None:
    report_failure("realtime: events for " + ", ".join(c for c, _ in messages) + " not delivered", exc)


class Publisher:
    """Renders and publishes on a background thread, in the order work is handed in.

    For a caller that commits in batches (the meter): a batch's messages are
    rendered and sent while the caller's next batch waits on the database,
    instead of after it. Use as a context manager; leaving it waits until all
    is sent and re-raises a rendering error (a publishing error is logged, as
    everywhere: Redis down loses updates, not money).
    """

    def __init__(self):
        self._app = current_app._get_current_object()
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def __enter__(self) -> "Publisher":
        self._thread.start()
        return self

    def submit(self, render) -> None:
        """`render()` → [(channel, html)], called on the publisher's thread with an app context."""
        self._work.put(render)

    def _run(self) -> None:
        with self._app.app_context():
            while (render := self._work.get()) is not None:
                if self._error is not None:
                    continue  # drain: the caller learns of the first error when it leaves
                try:
                    messages = render()
                except BaseException as exc:  # noqa: BLE001 - handed to the caller in __exit__
                    self._error = exc
                    continue
                if messages:
                    publish_many(messages)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._work.put(None)
        self._thread.join()
        if self._error is not None and exc is None:
            raise self._error
