"""Which feature serves which channel: the registry the transport routes by.

The transport knows no feature (STYLE.md 9). At app creation each feature's
`live.init_app` registers here

* the channels it serves on `/ws/channels/<channel>`, by name prefix: who may
  join (checked at the handshake, before the upgrade), what a (re)connect
  receives (for a `snapshot` channel, the same for everyone and cached:
  snapshot.py) and, for a channel with an audience, how its viewer count reads;
* its share of each user's own feed, `/ws/me` (the balance, a creator's tips,
  their call requests): what a (re)connect of that socket receives;
* its share of another feature's channels (a stream's chat, goal and
  leaderboard on the stream's channel): what a (re)connect of those receives
  after the owner's state.

Sockets that are not a channel (a creator's OBS overlay, a call's signaling)
are the feature's own WebSocket routes; the transport's checks (Origin, no
compression) apply to every socket, whoever declares it (sockets.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from flask import Flask, current_app

from app.errors import NotFound
from app.realtime.snapshot import Snapshots


@dataclass(frozen=True)
class Channel:
    """Channels whose names start with `prefix`.

    `authorize(name)` runs at the handshake, in the request: it returns what
    `on_connect` needs (plain data: the DB session is released before the
    socket subscribes), or refuses by raising an `AppError`, whose HTTP answer
    then replaces the upgrade: `channel_not_found()` for a name it has no
    channel for, Unauthorized or Forbidden for one this user may not join.
    `on_connect(name, joined)` → the HTML sent first on every (re)connect and
    after a Redis outage (None: nothing), read in a fresh DB session.
    `viewers(count)` → the HTML of the channel's viewer count, sent after the
    state on every (re)connect and pushed when it changes; None for a channel
    nobody counts (a call's two pages).
    `snapshot`: the state (`on_connect` and the shares) is the same for every
    viewer — it reads neither `joined` nor who is asking — and every change to it
    is published on the channel (realtime.bus) or announced with
    `bus.snapshot_changed`; it is then served from a cache (snapshot.py)."""

    prefix: str
    authorize: Callable[[str], Any]
    on_connect: Callable[[str, Any], str | None]
    viewers: Callable[[int], str] | None = None
    snapshot: bool = False


class Registry:
    """One app's channels and `/ws/me` shares (`app.extensions["realtime_channels"]`)."""

    def __init__(self, app: Flask):
        self._app = app
        self._channels: tuple[Channel, ...] = ()
        self.feed: tuple[Callable[[Any], str | None], ...] = ()
        self._shares: dict[str, tuple[Callable[[str], str | None], ...]] = {}
        self._snapshots = Snapshots()
        # The prefixes of `snapshot` channels, for `str.startswith` (bus.py asks per message).
        self.snapshot_prefixes: tuple[str, ...] = ()

    def add_channel(self, channel: Channel) -> None:
        for other in self._channels:
            if other.prefix.startswith(channel.prefix) or channel.prefix.startswith(other.prefix):
                raise ValueError(f"channel prefix {channel.prefix!r} overlaps {other.prefix!r}")
        self._channels += (channel,)
        if channel.snapshot:
            self.snapshot_prefixes += (channel.prefix,)

    def add_feed(self, on_connect: Callable[[Any], str | None]) -> None:
        self.feed += (on_connect,)

    def add_share(self, prefix: str, on_connect: Callable[[str], str | None]) -> None:
        if not any(c.prefix == prefix for c in self._channels):
            raise ValueError(f"no channel {prefix!r} to add a share to")
        self._shares[prefix] = self._shares.get(prefix, ()) + (on_connect,)

    def connect_state(self, channel: Channel, name: str, joined, fresh: bool = False) -> str | None:
        """What a (re)connect of channel `name` receives, for a socket that has
        subscribed to it: its owner's state, then each share's, in the order they
        were registered, then its viewer count (None: nothing). A `snapshot`
        channel's state comes from the cache unless `fresh` (re-sending after a
        Redis outage) or the app's SNAPSHOT_CACHE is off."""
        since = time.monotonic()  # the hub confirmed the subscription before this call
        render = partial(self._state, channel, name, joined)
        if channel.snapshot and self._app.config["SNAPSHOT_CACHE"]:
            state = self._snapshots.state(name, render, since, fresh)
        else:
            state = render()
        parts = [state]
        if channel.viewers is not None:
            count = self._app.extensions["realtime_hub"].viewer_count(name)
            if count is not None:  # unknown while Redis is down: the presence tick sends it later
                parts.append(channel.viewers(count))
        return "\n".join(part for part in parts if part) or None

    def _state(self, channel: Channel, name: str, joined) -> str | None:
        parts = [channel.on_connect(name, joined), *(share(name) for share in self._shares.get(channel.prefix, ()))]
        return "\n".join(part for part in parts if part) or None

    def channel(self, name: str) -> Channel | None:
        """The registered channel `name` belongs to; None for any other name."""
        return next((c for c in self._channels if name.startswith(c.prefix)), None)

    def audience(self, name: str) -> Callable[[int], str] | None:
        """For the hub's presence tick (its own thread, no app context): how the
        viewer count of channel `name` reads, or None if nobody counts it (every
        name that is no registered channel with viewers: one person's feed, …)."""
        channel = self.channel(name)
        if channel is None or channel.viewers is None:
            return None
        return partial(self._in_app, channel.viewers)

    def _in_app(self, render: Callable[[int], str], count: int) -> str:
        with self._app.app_context():
            return render(count)


def channel_not_found() -> NotFound:
    """The one answer for a name that is no channel, whether no feature serves its
    prefix or the feature has no such stream or call: 404 `channel_not_found`."""
    return NotFound("No such channel.", "channel_not_found")


def registry() -> Registry:
    return current_app.extensions["realtime_channels"]


def register_channel(app: Flask, prefix: str, authorize: Callable[[str], Any],
                     on_connect: Callable[[str, Any], str | None],
                     viewers: Callable[[int], str] | None = None, snapshot: bool = False) -> None:
    """Serve channels named `prefix…` on `/ws/channels/<channel>` (see `Channel`).
    Raises ValueError if `prefix` overlaps a registered one."""
    app.extensions["realtime_channels"].add_channel(Channel(prefix, authorize, on_connect, viewers, snapshot))


def register_feed(app: Flask, on_connect: Callable[[Any], str | None]) -> None:
    """Add a share to every user's `/ws/me` state: `on_connect(user)` → HTML
    (None: nothing for this user), read in a fresh DB session on every
    (re)connect. Shares are sent in the order they were registered."""
    app.extensions["realtime_channels"].add_feed(on_connect)


def register_channel_share(app: Flask, prefix: str, on_connect: Callable[[str], str | None]) -> None:
    """Add to what a (re)connect of the channels named `prefix…` receives (a feature
    registered by another feature: a stream's chat on the stream's channel):
    `on_connect(name)` → HTML (None: nothing), read in the same fresh DB session,
    after the owner's state. Register after the owner. Raises ValueError if no
    channel has exactly that prefix."""
    app.extensions["realtime_channels"].add_share(prefix, on_connect)
