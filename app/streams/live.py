"""Streams' live behaviour (STYLE.md 9): a stream's channel (`s-…`) is open to
whoever may watch the stream; a (re)connect receives its status and recent tips
(with the chat, goal and leaderboard shares: the same for every viewer, so served
from a snapshot, app/realtime/snapshot.py) and then its viewer count, which is
pushed as it changes. What streams publish after commit is in pushes.py:
streams.service imports that, and this module imports streams.service, so one
module for both would be an import loop.
"""
from __future__ import annotations

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


def _authorize(channel: str) -> None:
    stream = stream_for_channel(channel)
    if stream is None:
        raise channel_not_found()
    if not can_view(current_user, stream):
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
