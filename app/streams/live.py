"""Streams' live behaviour (STYLE.md 9): a stream's channel (`s-…`) is open to
whoever may watch the stream; a (re)connect receives its status and recent tips
(with the chat, goal and leaderboard shares: the same for every viewer, so served
from a snapshot, app/realtime/snapshot.py) and then its viewer count, which is
pushed as it changes. What streams publish after commit is in pushes.py:
streams.service imports that, and this module imports streams.service, so one
module for both would be an import loop.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from flask_login import current_user

from app.errors import Forbidden
from app.realtime import fragments
from app.realtime.channels import channel_not_found, register_channel
from app.streams.models import CHANNEL_PREFIX
from app.streams.service import can_view, stream_for_channel
from app.tips.service import recent_tips


def init_app(app: Flask) -> None:
    register_channel(app, CHANNEL_PREFIX, _authorize, _on_connect, viewers=_viewer_count, snapshot=True)


@dataclass(frozen=True)
class _Door:
    """What deciding a join needs of a stream (`can_view` reads these): none of it
    changes once the stream exists, and streams are never deleted."""
    id: int
    creator_id: int
    type: str


# Per process, channel → its stream's door: a storm of joins to one stream reads the
# streams table once, not once per join (a cached join then touches no PostgreSQL at
# all for a public stream). Bounded: emptied when full.
_doors: dict[str, _Door] = {}
_DOORS_MAX = 10_000


def _door(channel: str) -> _Door | None:
    door = _doors.get(channel)
    if door is None:
        stream = stream_for_channel(channel)
        if stream is None:
            return None  # not remembered: a name that is no stream stays a lookup
        if len(_doors) >= _DOORS_MAX:
            _doors.clear()
        door = _doors[channel] = _Door(stream.id, stream.creator_id, stream.type)
    return door


def _authorize(channel: str) -> None:
    door = _door(channel)
    if door is None:
        raise channel_not_found()
    if not can_view(current_user, door):  # a private stream's ticket is still looked up per join
        raise Forbidden("You don't have access to this stream.", "no_access")


def _on_connect(channel: str, _joined) -> str | None:
    """Rendered as a pushed fragment (no context processors, no current user): the
    same for every viewer. The viewer count is the transport's, per join."""
    stream = stream_for_channel(channel)
    if stream is None:
        return None
    return fragments.render("streams/_sync.html", stream=stream, recent=recent_tips(stream_id=stream.id),
                            viewers=None)


def _viewer_count(viewers: int) -> str:
    return fragments.render("streams/_viewer_count.html", viewers=viewers)
