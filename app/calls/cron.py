"""The calls' periodic jobs, run by the worker's cron every `BILLING_TICK_SECONDS`:
the metering tick, and the refund of first blocks whose media never connected."""
from __future__ import annotations

import logging

from flask import current_app

from app.calls import refunds, service
from app.jobs import job
from app.calls.signaling import sweep_stale_presence

log = logging.getLogger(__name__)


@job
def meter_calls() -> dict:
    """The metering tick: first report parties whose web instance died as gone (their
    pages stopped heartbeating), then charge every due call block."""
    sweep_stale_presence()
    result = service.meter()
    if result.blocks_charged or result.calls_ended:  # a quiet tick is DEBUG (worker.py)
        log.info("metering: %d block(s) charged, %d call(s) ended", result.blocks_charged, result.calls_ended)
    return result.to_dict()


@job
def refund_failed_calls() -> dict:
    """Give block 0 back to every call whose media never connected during it
    (app/calls/refunds.py); harmless to run twice or side by side."""
    refunded = refunds.refund_unconnected_calls()
    if refunded:
        log.info("refunded block 0 of calls whose media never connected: %s", refunded)
    return {"refunded": refunded}


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    tick = current_app.config["BILLING_TICK_SECONDS"]
    return [(meter_calls, tick), (refund_failed_calls, tick)]
