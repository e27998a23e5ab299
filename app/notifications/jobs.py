"""Notifications' queued job: telling followers that a stream went live.

Queued by app.streams.service after the commit that starts a stream; the cron
sweep (cron.py) announces it anyway if the job was never queued or was lost.
"""
from __future__ import annotations

from app.jobs import job
from app.notifications import service


@job
def announce_live(stream_id: int) -> int:
    """One "went live" notification per follower (see service.announce_live)."""
    return service.announce_live(stream_id)
