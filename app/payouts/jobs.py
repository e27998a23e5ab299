"""The payouts' queued job: sending one payout.

Queued by `service` after the commit that makes a payout ready to send (a
request without approval, an operator's approval); the cron sweep (`cron.py`)
sends it anyway if the job was never queued, was lost, crashed, or met a
Stripe outage. Running it twice is harmless (`service.pay`).
"""
from __future__ import annotations

from app.jobs import job
from app.payouts import service


@job
def pay_payout(payout_id: int) -> str:
    """Send the payout (see `app.payouts.service.pay`); returns what happened."""
    return service.pay(payout_id)
