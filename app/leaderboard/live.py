"""The leaderboard's live behaviour (STYLE.md 9): its share of a stream channel's
(re)connect state, and the crown every tip partial asks about (`is_king`, a template
global so pushed fragments have it too). Updates are published by the room's refresh
job (app/goals/jobs.py)."""
from __future__ import annotations

from flask import Flask

from app.leaderboard.pushes import leaderboard_html
from app.leaderboard.service import is_king, stream_top
from app.realtime.channels import register_channel_share
from app.streams.models import CHANNEL_PREFIX
from app.streams.service import stream_for_channel


def init_app(app: Flask) -> None:
    app.jinja_env.globals["is_king"] = is_king
    register_channel_share(app, CHANNEL_PREFIX, _stream_leaderboard)


def _stream_leaderboard(channel: str) -> str | None:
    stream = stream_for_channel(channel)
    return leaderboard_html(stream, stream_top(stream.id)) if stream else None
