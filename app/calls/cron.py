"""The calls' periodic jobs, run by the worker's cron every `BILLING_TICK_SECONDS`:
the metering tick, and the refund of first blocks whose media never connected."""
from __future__ import annotations

from flask import current_app

from app.calls import refunds, service
from app.jobs import job
from app.calls.signaling import sweep_stale_presence


@job
def meter_calls() -> dict:
    """The metering tick: first report parties whose web instance died as gone (their
    pages stopped heartbeating), then charge every due call block."""
    sweep_stale_presence()
    return service.meter().to_dict()


@job
def refund_failed_calls() -> dict:
    """Give block 0 back to every call whose media never connected during it
    (app/calls/refunds.py); harmless to run twice or side by side."""
    return {"refunded": refunds.refund_unconnected_calls()}


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    tick = current_app.config["BILLING_TICK_SECONDS"]
    return [(meter_calls, tick), (refund_failed_calls, tick)]
