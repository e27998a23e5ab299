"""Notifications' periodic job, run by the worker's cron: the sweep that backs up
the "went live" job (app/jobs.py: every enqueue is backed by a sweep).

How it knows what is left to do: `announce_live` marks each stream it has handled
in Redis (`notifications:announced:<stream id>`, kept two days). Every minute the
sweep announces every stream that went live in the last ANNOUNCE_WINDOW_MINUTES
and has no mark: its job was never queued (Redis was down at the start), was lost
with a worker, or is simply still waiting. Announcing twice is harmless (one row
per follower and stream, and nothing is published for rows that existed), so a
lost mark costs a repeated query, never a repeated notification. A stream the
worker could not reach for a whole window (an outage longer than that) is not
announced any more: by then "is live" is old news.
"""
from __future__ import annotations

from flask import current_app

from app.jobs import job
from app.notifications import service

ANNOUNCE_SWEEP_SECONDS = 60
ANNOUNCE_WINDOW_MINUTES = 30


@job
def sweep_live_announcements() -> dict:
    """Announce every recently started live stream whose job did not."""
    announced = {stream_id: service.announce_live(stream_id)
                 for stream_id in service.unannounced_live_streams(ANNOUNCE_WINDOW_MINUTES)}
    if any(announced.values()):
        current_app.logger.info("sweep: announced live streams %s", announced)
    return announced


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(sweep_live_announcements, ANNOUNCE_SWEEP_SECONDS)]
