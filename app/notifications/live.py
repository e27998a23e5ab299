"""Notifications' live behaviour (STYLE.md 9): their share of `/ws/me` — the
bell's unread count, sent on every (re)connect so a tab that missed a push is
right again. What they publish after commit is in pushes.py."""
from __future__ import annotations

from flask import Flask

from app.notifications import pushes, service
from app.realtime.channels import register_feed


def init_app(app: Flask) -> None:
    register_feed(app, _bell_state)
    # The bell in the nav of every page reads the count as the page renders.
    app.jinja_env.globals["unread_notifications"] = service.unread_count


def _bell_state(user) -> str:
    return pushes.bell_message(service.unread_count(user.id))
