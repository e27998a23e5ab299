"""The payouts' periodic job: the sweep that sends payouts left unsent."""
from __future__ import annotations

from flask import current_app

from app.jobs import job
from app.payouts import service

PAYOUT_SWEEP_SECONDS = 120


@job
def sweep_payouts() -> dict:
    """Send every payout cleared to go that has no transfer yet (its job lost, its
    worker killed mid-way, Stripe down last time). `{payout id: outcome}`."""
    outcomes: dict[int, str] = {}
    # Page through them all: payouts Stripe keeps answering "try again" must not hide the rest.
    while batch := service.unsent(after=max(outcomes, default=0)):
        outcomes.update((payout_id, service.pay(payout_id)) for payout_id in batch)
    if outcomes:
        current_app.logger.info("payout sweep: %s", outcomes)
    return outcomes


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(sweep_payouts, PAYOUT_SWEEP_SECONDS)]
