"""Background jobs run by `worker.py`. Jobs take ids, are enqueued after the
commit that makes them necessary, and are harmless when run twice.

`cron_jobs()` lists (function, interval_seconds) pairs for RQ's CronScheduler.
A cron sweep backs up every enqueue: if Redis was down when a show was
canceled, the next sweep refunds it anyway.
"""
from __future__ import annotations

import functools
import logging

from flask import current_app, has_app_context
from redis import RedisError

from app.extensions import db

log = logging.getLogger(__name__)

SHOW_SWEEP_SECONDS = 60
ROLLUP_SECONDS = 60


def queue_name() -> str:
    """The RQ queue, namespaced like every other key (REDIS_PREFIX): deployments or
    test runs sharing one Redis never run each other's jobs."""
    return f"{current_app.config['REDIS_PREFIX']}jobs"


def job(func):
    """Run `func` in an app context (the worker's, or a new one under a bare
    `rq worker`) and release its DB session afterwards."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        if has_app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()
        from app import create_app
        with create_app().app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()
    return run


def enqueue(func, *args) -> bool:
    """Queue `func(*args)` for the worker; False (logged) if Redis is down — the
    cron sweep that backs each job up will do the work instead."""
    from rq import Queue

    from app.redis_client import get_redis
    try:
        Queue(queue_name(), connection=get_redis()).enqueue(func, *args)
        return True
    except RedisError as exc:
        log.warning("jobs: could not queue %s%r (%s); the next sweep will do it", func.__name__, args, exc)
        return False


@job
def refund_show(stream_id: int) -> int:
    """Refund every ticket of a canceled show (see app.streams.tickets)."""
    from app.streams.tickets import refund_show as refund
    return refund(stream_id)


@job
def sweep_shows() -> dict:
    """Cancel shows that never started in time, then refund every canceled show
    that still holds tickets (including ones whose refund job was lost)."""
    from app.streams import service, tickets

    canceled = service.cancel_no_shows()
    refunded = {stream_id: tickets.refund_show(stream_id) for stream_id in service.shows_awaiting_refunds()}
    if canceled or refunded:
        current_app.logger.info("sweep: canceled no-shows %s, refunded %s", canceled, refunded)
    return {"canceled": canceled, "refunded": refunded}


@job
def meter_calls() -> dict:
    """The metering tick: first report parties whose web instance died as gone (their
    pages stopped heartbeating), then charge every due call block."""
    from app.calls import service
    from app.calls.signaling import sweep_stale_presence
    sweep_stale_presence()
    return service.meter().to_dict()


@job
def roll_up_ledger() -> dict:
    """Fold new ledger entries into the dashboard rollups (app.dashboard.rollups);
    overlapping runs serialise on a lock and count each entry once."""
    from app.dashboard import rollups
    return rollups.run()


def cron_jobs() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(sweep_shows, SHOW_SWEEP_SECONDS), (meter_calls, current_app.config["BILLING_TICK_SECONDS"]),
            (roll_up_ledger, ROLLUP_SECONDS)]
