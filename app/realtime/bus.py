"""Publishing realtime events: HTML fragments to a channel, after the commit.

`publish` never raises: Redis being down loses the overlay, not the money
(the caller has already committed). Channels: a stream's or call's channel
name, or `user:<id>` for one user's own feed (`/ws/me`).
"""
from __future__ import annotations

import logging

from redis import RedisError

from flask import current_app

from app.redis_client import get_redis

log = logging.getLogger(__name__)


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def publish(channel: str, html: str) -> bool:
    """Send `html` to every socket on `channel` on every instance; False if Redis is down."""
    return publish_many([(channel, html)])


def publish_many(messages: list[tuple[str, str]]) -> bool:
    """Publish several (channel, html) messages in one round trip to Redis."""
    try:
        prefix = current_app.config["REDIS_PREFIX"]
        pipe = get_redis().pipeline(transaction=False)
        for channel, html in messages:
            pipe.publish(prefix + channel, html)
        pipe.execute()
        return True
    except RedisError as exc:
        log.warning("realtime: events for %s not delivered, Redis unavailable: %s",
                    ", ".join(c for c, _ in messages), exc)
        return False
