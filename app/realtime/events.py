"""Domain events rendered as htmx out-of-band fragments and published.

Each event renders the *same* partial templates the pages use, so an item
looks identical whether it arrived by page load, htmx swap or WebSocket.
Call these only after the transaction that caused them has committed.
"""
from __future__ import annotations

from flask import current_app
from redis import RedisError

from app.realtime import fragments
from app.realtime.bus import COUNT, count_and_publish, publish, publish_many, user_channel
from app.redis_client import get_redis


def _unseen_key(creator_id: int) -> str:
    return f"{current_app.config['REDIS_PREFIX']}{_unseen_counter(creator_id)}"


def _unseen_counter(creator_id: int) -> str:
    return f"unseen-tips:{creator_id}"


def _render(template: str, **context) -> str:
    return fragments.render(template, **context)


def tip_sent(tip, sender, sender_balance: int) -> None:
    """Overlay on the tip's channel, OBS overlay + feed + unseen badge for the
    creator, balance for the sender's other tabs: one round trip to Redis."""
    messages = [
        (f"overlay:{tip.creator_id}", _render("tips/_overlay_push.html", tip=tip, sender=sender, obs=True)),
        (user_channel(tip.creator_id), _render("tips/_creator_push.html", tip=tip, sender=sender, unseen=COUNT)),
        (user_channel(sender.id), _render("wallet/_balance_push.html", balance=sender_balance)),
    ]
    if tip.channel:
        messages.append((tip.channel, _render("tips/_overlay_push.html", tip=tip, sender=sender)))
    count_and_publish(_unseen_counter(tip.creator_id), messages)


def balance_changed(user_id: int, balance: int) -> None:
    """The user's new wallet balance, for every tab they have open."""
    publish_many(balance_messages(user_id, balance))


def call_requested(call) -> None:
    """The creator's notification of a new call request (their /ws/me)."""
    publish(user_channel(call.creator_id), _render("calls/_request_push.html", call=call))


def call_changed(call) -> None:
    """The call's new state, for both call pages (they share the call's channel); while
    the change is about a request (accepted, declined, withdrawn, expired), also the
    creator's refreshed list of pending requests."""
    messages = call_messages(call)
    if call.accepted_at is None or call.status == "active" and call.blocks_charged <= 1:
        messages.append((user_channel(call.creator_id), _render("calls/_request_push.html", call=call)))
    publish_many(messages)


def call_messages(call, figures_only: bool = False) -> list[tuple[str, str]]:
    """`call_changed`'s messages, for callers that publish many calls in one round trip
    (the meter). `figures_only`: just the figures (a block was charged, the status and
    buttons are unchanged) — the meter's usual case, and a fraction of the panel's cost."""
    if figures_only:
        return [(call.channel, _render("calls/_figures.html", call=call, oob=True))]
    return [(call.channel, _render("calls/_state.html", call=call, oob=True))]


def balance_messages(user_id: int, balance: int) -> list[tuple[str, str]]:
    return [(user_channel(user_id), _render("wallet/_balance_push.html", balance=balance))]


def stream_status_changed(stream) -> None:
    publish(stream.channel, _render("streams/_status.html", stream=stream, oob=True))


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
