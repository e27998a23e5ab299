"""Streams' live behaviour (STYLE.md 9): a stream's channel (`s-…`) is open to
whoever may watch the stream; a (re)connect receives its status, recent tips
and viewer count, and its viewer count is pushed as it changes. What streams
publish after commit is in pushes.py: streams.service imports that, and this
module imports streams.service, so one module for both would be an import loop.
"""
from __future__ import annotations

from flask import Flask, render_template
from flask_login import current_user

from app.errors import Forbidden
from app.realtime import fragments
from app.realtime.channels import channel_not_found, register_channel
from app.realtime.sockets import hub
from app.streams.models import CHANNEL_PREFIX
from app.streams.service import can_view, stream_for_channel
from app.tips.service import recent_tips


def init_app(app: Flask) -> None:
    register_channel(app, CHANNEL_PREFIX, _authorize, _on_connect, viewers=_viewer_count)


def _authorize(channel: str) -> None:
    stream = stream_for_channel(channel)
    if stream is None:
        raise channel_not_found()
    if not can_view(current_user, stream):
        raise Forbidden("You don't have access to this stream.", "no_access")


def _on_connect(channel: str, _joined) -> str:
    stream = stream_for_channel(channel)
    return render_template("streams/_sync.html", stream=stream, recent=recent_tips(stream_id=stream.id),
                           viewers=hub().viewer_count(channel))


def _viewer_count(viewers: int) -> str:
    return fragments.render("streams/_viewer_count.html", viewers=viewers)
