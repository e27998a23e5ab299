"""The wallet's periodic job: reconciling Checkout purchases whose webhook never came.

Every `RECONCILE_EVERY_SECONDS` the worker looks up, at Stripe, each purchase
still `pending` `RECONCILE_AFTER_MINUTES` after it was made or last looked at,
and settles it through the webhook's own handlers (stripe_events.settle): a
paid session credits (once, whichever of webhook and job comes first), an
expired one expires, an open one is asked about again next time. Stripe
unreachable: the run stops and the next one tries again; nothing is lost, the
purchases stay pending.
"""
from __future__ import annotations

import logging

from flask import current_app

from app.errors import AppError
from app.extensions import db
from app.jobs import job
from app.payments.providers import ProviderError, provider as get_provider
from app.payments.webhooks import publish_after_commit
from app.wallet import service, stripe_events

log = logging.getLogger(__name__)

RECONCILE_EVERY_SECONDS = 300
BATCH = 100  # purchases looked up per run at most (Stripe's read limit is ~100/s)


@job
def reconcile_purchases() -> dict:
    """Settle stale pending Stripe purchases as Stripe has them; returns `{checked,
    settled, failed}`: settled maps each purchase whose session was no longer open
    to the outcome (credited, expired, flagged, awaiting_payment, …); failed
    counts the ones Stripe or the checks refused."""
    if get_provider().name != "stripe":
        log.debug("reconcile: payments are not through Stripe, nothing to do")
        return {"checked": 0, "settled": {}, "failed": 0}
    due = service.checkouts_to_reconcile(current_app.config["RECONCILE_AFTER_MINUTES"], BATCH)
    db.session.rollback()  # no transaction held open while Stripe answers
    settled, failed = {}, 0
    for purchase_id, session_id in due:
        try:
            session = get_provider().checkout_session(session_id)
        except ProviderError as err:
            if not err.declined:
                log.warning("reconcile: Stripe unavailable (%s); the next run tries again", err.message)
                break
            log.warning("reconcile: purchase %s: Stripe refused to look up %s: %s", purchase_id, session_id,
                        err.message)
            failed += 1
            _checked(purchase_id)
            continue
        outcome = _settle(purchase_id, session)
        if outcome is None:
            failed += 1
        elif outcome != "open":
            settled[purchase_id] = outcome
    if settled or failed:
        log.info("reconcile: checked %d pending purchase(s); settled %s; %d could not be", len(due), settled, failed)
    else:
        log.debug("reconcile: checked %d pending purchase(s), none settled", len(due))
    return {"checked": len(due), "settled": settled, "failed": failed}


def _settle(purchase_id: int, session: dict) -> str | None:
    """Apply the session's state to its purchase in one transaction, as the webhook
    would; then publish. The outcome ("open" while unpaid), None if refused."""
    try:
        service.checked(purchase_id)
        handled = stripe_events.settle(session)
        db.session.commit()
    except AppError as err:
        db.session.rollback()
        log.warning("reconcile: purchase %s: Stripe's session changes nothing: %s", purchase_id, err.message)
        _checked(purchase_id)
        return None
    if handled is None:
        return "open"
    publish_after_commit(handled, f"reconcile: purchase {purchase_id}")
    return handled.outcome


def _checked(purchase_id: int) -> None:
    service.checked(purchase_id)
    db.session.commit()


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(reconcile_purchases, RECONCILE_EVERY_SECONDS)]
