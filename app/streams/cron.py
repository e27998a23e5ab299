"""The streams' periodic job: the show sweep, run by the worker's cron."""
from __future__ import annotations

from flask import current_app

from app.jobs import job
from app.streams import service, tickets

SHOW_SWEEP_SECONDS = 60


@job
def sweep_shows() -> dict:
    """Cancel shows that never started in time, then refund every canceled show
    that still holds tickets (including ones whose refund job was lost)."""
    canceled = service.cancel_no_shows()
    refunded = {stream_id: tickets.refund_show(stream_id) for stream_id in service.shows_awaiting_refunds()}
    if canceled or refunded:
        current_app.logger.info("sweep: canceled no-shows %s, refunded %s", canceled, refunded)
    return {"canceled": canceled, "refunded": refunded}


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(sweep_shows, SHOW_SWEEP_SECONDS)]
