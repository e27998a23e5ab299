"""This feature's Stripe webhook events (registered with app.payments.webhooks):
`account.updated`, which says whether a creator's connected account can be paid."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask

from app.errors import BadRequest
from app.payments.webhooks import Handled, register_handler
from app.payouts import service


def account_updated(obj: dict, event: dict) -> Handled:
    """Record `payouts_enabled` / `details_submitted` of one of our connected accounts.

    Each event carries the account's whole state, so a late one is ignored when a
    newer state is already recorded ("stale"). Refused (`AppError`, nothing
    changes): fields of the wrong type, an event whose `account` is another
    account than its object, an account that is not ours."""
    account_id, enabled, submitted = obj.get("id"), obj.get("payouts_enabled"), obj.get("details_submitted")
    if not (isinstance(account_id, str) and 0 < len(account_id) <= 255
            and isinstance(enabled, bool) and isinstance(submitted, bool)):
        raise BadRequest("The account needs an id and boolean payouts_enabled and details_submitted.",
                         "malformed_account")
    if event.get("account") not in (None, account_id):
        raise BadRequest("The event's account is not the account it describes.", "account_mismatch")
    outcome = service.record_account_state(account_id, payouts_enabled=enabled, details_submitted=submitted,
                                           as_of=_created(event))
    return Handled(outcome)


def _created(event: dict) -> datetime:
    created = event.get("created")
    if isinstance(created, int) and not isinstance(created, bool):
        try:
            return datetime.fromtimestamp(created, timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    raise BadRequest("The event's created time must be a Unix timestamp.", "malformed_event")


def init_app(app: Flask) -> None:
    register_handler(app, "account.updated", account_updated)
