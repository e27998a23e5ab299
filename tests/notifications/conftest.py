"""Notifications fixtures: a creator with followers, notifications written directly."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.extensions import db
from app.follows import service as follows
from app.notifications import service
from app.notifications.models import Notification
from tests.realtime.conftest import live_api, people, viewers  # noqa: F401 - fixtures for test_live


@pytest.fixture()
def notify(ctx):
    """notify(user, text="…", url="/streams/1", key=None) → the new notification's id (via the service)."""
    def _notify(user, text="Someone is live: a show", url="/streams/1", key=None):
        key = key or f"test:{uuid.uuid4().hex}"
        service.notify_many(select(db.literal(user.id)), "live", text, url, key)
        return db.session.scalar(select(Notification.id).where(Notification.user_id == user.id,
                                                                Notification.dedupe_key == key))
    return _notify


@pytest.fixture()
def followed(ctx, make_creator, make_fan):
    """followed(n=2) → (creator, [fans following them])."""
    def _make(n=2):
        creator = make_creator()
        fans = [make_fan() for _ in range(n)]
        for fan in fans:
            follows.follow(fan, creator.id)
        return creator, fans
    return _make


def notifications_of(user_id: int) -> list[Notification]:
    db.session.expire_all()
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user_id)
                                   .order_by(Notification.id)))
