"""Domain events rendered as htmx out-of-band fragments and published.

Each event renders the *same* partial templates the pages use, so an item
looks identical whether it arrived by page load, htmx swap or WebSocket.
Call these only after the transaction that caused them has committed.
"""
from __future__ import annotations

from flask import current_app, render_template
from redis import RedisError

from app.realtime.bus import publish, publish_many, user_channel
from app.redis_client import get_redis



def _unseen_key(creator_id: int) -> str:
    return f"{current_app.config['REDIS_PREFIX']}unseen-tips:{creator_id}"


def tip_sent(tip, sender, sender_balance: int) -> None:
    """Overlay on the tip's channel, OBS overlay + feed + badge for the creator,
    balance for the sender's other tabs."""
    try:
        unseen = int(get_redis().incr(_unseen_key(tip.creator_id)))
    except RedisError:
        unseen = None
    messages = [
        (f"overlay:{tip.creator_id}", render_template("tips/_overlay_push.html", tip=tip, sender=sender, obs=True)),
        (user_channel(tip.creator_id), render_template("tips/_creator_push.html", tip=tip, sender=sender, unseen=unseen)),
        (user_channel(sender.id), render_template("wallet/_balance_push.html", balance=sender_balance)),
    ]
    if tip.channel:
        messages.append((tip.channel, render_template("tips/_overlay_push.html", tip=tip, sender=sender)))
    publish_many(messages)


def stream_status_changed(stream) -> None:
    publish(stream.channel, render_template("streams/_status.html", stream=stream, oob=True))


def unseen_tips(creator_id: int) -> int | None:
    try:
        return int(get_redis().get(_unseen_key(creator_id)) or 0)
    except RedisError:
        return None


def mark_tips_seen(creator_id: int) -> None:
    try:
        get_redis().delete(_unseen_key(creator_id))
    except RedisError:
        pass
