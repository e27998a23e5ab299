"""The calls' periodic job: the metering tick, run by the worker's cron every
`BILLING_TICK_SECONDS`."""
from __future__ import annotations

from flask import current_app

from app.calls import service
from app.jobs import job
from app.calls.signaling import sweep_stale_presence


@job
def meter_calls() -> dict:
    """The metering tick: first report parties whose web instance died as gone (their
    pages stopped heartbeating), then charge every due call block."""
    sweep_stale_presence()
    return service.meter().to_dict()


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(meter_calls, current_app.config["BILLING_TICK_SECONDS"])]
