"""The streams' queued job: refunding a canceled show.

Queued by `service` after the commit that cancels a private show; the cron
sweep (`cron.py`) refunds the show anyway if the job was never queued or lost.
"""
from __future__ import annotations

from app.jobs import job
from app.streams import tickets


@job
def refund_show(stream_id: int) -> int:
    """Refund every ticket of a canceled show (see app.streams.tickets)."""
    return tickets.refund_show(stream_id)
