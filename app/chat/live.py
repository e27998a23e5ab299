"""Chat's live behaviour (STYLE.md 9): its share of a stream's channel. Every (re)connect
of a stream socket receives the room's latest history, replacing the list, so a page
that missed messages while disconnected (or got some twice) is right again. What chat
publishes after commit is in pushes.py."""
from __future__ import annotations

from flask import Flask

from app.chat import service
from app.realtime import fragments
from app.realtime.channels import register_channel_share
from app.streams.models import CHANNEL_PREFIX


def init_app(app: Flask) -> None:
    register_channel_share(app, CHANNEL_PREFIX, connect_state)
    app.jinja_env.globals["chat_lines_kept"] = service.LINES_KEPT


def connect_state(channel: str) -> str | None:
    """The chat's history for a (re)connect of stream channel `channel` (None: no such stream)."""
    history = service.history_for_channel(channel)
    if history is None:
        return None
    return fragments.render("chat/_sync.html", history=history)
