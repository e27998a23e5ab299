"""What tips publish after commit: the pop on the tip's channel and on the
creator's OBS overlay (as the creator's alert controls say: app/alerts), the creator's feed and unseen-tips badge (their
`/ws/me`), and the sender's new balance — in one round trip to Redis; and, for
a creator who turned it on, a Web Push to their devices (app/push).

The unseen-tips badge counts in Redis (`unseen-tips:<creator id>`): a tip adds
one, opening the tips menu clears it.
"""
from __future__ import annotations

import secrets

from flask import current_app
from redis import RedisError

from app.alerts.service import settings_of
from app.chat import pushes as chat_pushes
from app.goals.pushes import room_claim, room_claimed
from app.push.service import page_path, push_to_users
from app.realtime import fragments
from app.realtime.bus import COUNT, count_publish_and_claim, user_channel
from app.redis_client import get_redis
from app.wallet.pushes import balance_messages, earnings_claim, earnings_claimed


# The creator's two lists (feed, dashboard) show the same tip item under their own id prefixes:
# tips/_creator_push.html renders it once with this prefix and replaces it per list. Random
# per process, like bus.COUNT, so text a user typed can never contain it.
ITEM_PREFIX = f"item-{secrets.token_hex(8)}-"


def overlay_channel(creator_id: int) -> str:
    """Where the creator's OBS overlay (tips.live's `/ws/overlay/<secret>`) listens."""
    return f"overlay:{creator_id}"


def tip_sent(tip, sender, sender_balance: int) -> None:
    """Overlay on the tip's channel, OBS overlay + feed + unseen badge for the creator,
    balance for the sender's other tabs, and the claims of the jobs that refresh the
    creator's earnings figure and the stream's room (one per creator / stream at a time,
    whatever the storm: `earnings_changed`, `room_changed`): one round trip to Redis."""
    # The creator's alert controls (app/alerts): a tip under their minimum pops up nowhere
    # (it still lands in every list); OBS plays their sound.
    alerts = settings_of(tip.creator_id)
    pop_up = alerts.pops_up(tip.amount)
    messages = [
        (user_channel(tip.creator_id), fragments.render("tips/_creator_push.html", tip=tip, sender=sender,
                                                        unseen=COUNT, prefix=ITEM_PREFIX)),
        *balance_messages(sender.id, sender_balance),
    ]
    if pop_up:
        messages.insert(0, (overlay_channel(tip.creator_id), fragments.render(
            "tips/_overlay_push.html", tip=tip, sender=sender, obs=True, sound=alerts.sound)))
    if tip.channel:
        pop = dict(tip=tip, sender=sender, pop_up=pop_up)
        html = fragments.render("tips/_overlay_push.html", **pop)
        if tip.stream_id:  # the stream's chat shows the tip too, in the same message (app/chat)
            html += chat_pushes.tip_line(**pop)
        messages.append((tip.channel, html))
    # The creator's earnings pill and the stream's goal bar and leaderboard (app/goals) are
    # refreshed by jobs, one per creator / stream at a time: their claims ride along.
    claims = [earnings_claim(tip.creator_id)] + ([room_claim(tip.stream_id)] if tip.stream_id else [])
    won = count_publish_and_claim(_unseen_counter(tip.creator_id), messages, claims) or [False] * len(claims)
    if won[0]:
        earnings_claimed([tip.creator_id])
    if tip.stream_id and won[1]:
        room_claimed(tip.stream_id)
    tip_push(tip, sender)


def tip_push(tip, sender) -> None:
    """A push to the creator's devices that have `tips` on. One tag for every tip: a storm
    replaces the notification on the phone instead of stacking dozens of them."""
    body = f"{sender.display_name} tipped you {tip.amount:,} tokens"
    if tip.message:
        body += f": “{tip.message}”"
    push_to_users([tip.creator_id], "tips", f"New tip: {tip.amount:,} tokens", body,
                  page_path("dashboard.creator"), tag="tips")


def unseen_tips(creator_id: int) -> int | None:
    """The creator's unseen-tips count; None while Redis is unavailable."""
    try:
        return int(get_redis().get(_unseen_key(creator_id)) or 0)
    except RedisError:
        return None


def mark_tips_seen(creator_id: int) -> None:
    try:
        get_redis().delete(_unseen_key(creator_id))
    except RedisError:
        pass


def _unseen_key(creator_id: int) -> str:
    return f"{current_app.config['REDIS_PREFIX']}{_unseen_counter(creator_id)}"


def _unseen_counter(creator_id: int) -> str:
    return f"unseen-tips:{creator_id}"
