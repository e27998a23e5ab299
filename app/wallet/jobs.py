"""The wallet's queued job: refreshing creators' earnings figure on their pages.

Queued by `pushes.earnings_changed` (at most one per creator at a time) after the
commits that moved tokens to their earnings: tips, settled shows, call blocks.
"""
from __future__ import annotations

from redis import RedisError

from app.jobs import job
from app.realtime.bus import publish_many
from app.redis_client import get_redis
from app.wallet.pushes import earnings_claim_key, earnings_messages
from app.wallet.service import earnings_figure


@job
def push_earnings(creator_ids: list[int]) -> int:
    """Publish each creator's earnings figure to their `/ws/me` (the nav pill); returns how
    many. Drops their claims first (see `pushes.earnings_changed`): what commits after the
    figure is read queues the next refresh. Running twice only publishes twice."""
    try:
        get_redis().delete(*(earnings_claim_key(c) for c in creator_ids))
    except RedisError:
        pass  # the claims expire on their own; the figures below are still right
    messages = [m for creator_id in creator_ids for m in earnings_messages(creator_id, earnings_figure(creator_id))]
    publish_many(messages)
    return len(creator_ids)
