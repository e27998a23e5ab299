"""The wallet's Stripe webhook events: what happened at Checkout (DESIGN.md §11).

Each handler reads the Checkout Session in the event, type-checking every field
it uses (`checkout_session`: a wrong type, a string for a number, a number past
a BIGINT → `MalformedSession`, so the transport records the event as refused and
nothing changes), then hands it to the wallet service, which locks the purchase
and applies the news once:

* `checkout.session.completed` with payment_status "paid", and
  `checkout.session.async_payment_succeeded` → credit (if the amount and
  currency paid are the purchase's price; else flagged for the operator);
  "unpaid" means an asynchronous method: the purchase stays pending;
* `checkout.session.expired` → expired, `checkout.session.async_payment_failed`
  → failed, if still pending.

Late, repeated or out-of-order events are harmless: a credited purchase is
never credited again, and a paid session credits even after `expired` (the
money was taken). The reconciliation job (cron.py) settles a session it looked
up at Stripe through `settle`, i.e. these same handlers.
"""
from __future__ import annotations

from flask import Flask

from app import validation
from app.errors import BadRequest
from app.payments.webhooks import Handled, register_handler
from app.wallet import service


class MalformedSession(BadRequest):
    code = "malformed_session"


def init_app(app: Flask) -> None:
    register_handler(app, "checkout.session.completed", session_completed)
    register_handler(app, "checkout.session.async_payment_succeeded", session_paid)
    register_handler(app, "checkout.session.expired", session_expired)
    register_handler(app, "checkout.session.async_payment_failed", session_failed)


def session_completed(obj: dict, event: dict | None = None) -> Handled:
    """The buyer finished Checkout: paid now, or ("unpaid") by a method that settles later."""
    session = checkout_session(obj)
    if session.payment_status == "paid":
        return _handled(service.checkout_paid(_priced(session)))
    return _handled(service.checkout_unpaid(session))


def session_paid(obj: dict, event: dict | None = None) -> Handled:
    """An asynchronous payment (a bank debit) succeeded."""
    return _handled(service.checkout_paid(_priced(checkout_session(obj))))


def session_expired(obj: dict, event: dict | None = None) -> Handled:
    return _handled(service.checkout_ended(checkout_session(obj), "expired"))


def session_failed(obj: dict, event: dict | None = None) -> Handled:
    """An asynchronous payment failed: nothing was paid."""
    return _handled(service.checkout_ended(checkout_session(obj), "failed"))


def settle(session: dict) -> Handled | None:
    """What the webhook would have done for a Checkout Session as Stripe has it now
    (the reconciliation): complete → `session_completed`, expired →
    `session_expired`; None while it is still open (the buyer may yet pay).
    Raises what the handlers raise; doesn't commit."""
    status = session.get("status")
    if status == "complete":
        return session_completed(session)
    if status == "expired":
        return session_expired(session)
    if status == "open":
        return None
    raise MalformedSession(f"Checkout Session status {str(status)[:32]!r} is not open, complete or expired.")


def _handled(settled: service.Settled) -> Handled:
    return Handled(settled.outcome, after_commit=lambda: service.settled_push(settled))


# ---- reading the session -------------------------------------------------------------------

def checkout_session(obj: dict) -> service.CheckoutSession:
    """The Checkout Session in `obj` (an event's data.object, or Stripe's answer),
    each field type-checked; `MalformedSession` for any field that is not what
    Stripe sends. The purchase is named by `client_reference_id` and
    `metadata.purchase_id` (at least one; both must agree)."""
    purchase_ids = {_purchase_id(obj.get("client_reference_id"), "client_reference_id")}
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise MalformedSession("The session's metadata is not an object.")
    purchase_ids.add(_purchase_id((metadata or {}).get("purchase_id"), "metadata.purchase_id"))
    purchase_ids.discard(None)
    if not purchase_ids:
        raise MalformedSession("The session names no purchase (client_reference_id, metadata.purchase_id).")
    if len(purchase_ids) > 1:
        raise MalformedSession("The session's client_reference_id and metadata.purchase_id disagree.")
    amount = obj.get("amount_total")
    if amount is not None and not (type(amount) is int and 0 <= amount <= validation.BIGINT_MAX):
        raise MalformedSession("The session's amount_total is not a whole number of cents.")
    return service.CheckoutSession(
        id=_text(obj.get("id"), "id", required=True), purchase_id=purchase_ids.pop(), amount_total=amount,
        currency=_currency(obj.get("currency")), payment_status=_text(obj.get("payment_status"), "payment_status"),
        payment_intent=_text(obj.get("payment_intent"), "payment_intent"))


def _priced(session: service.CheckoutSession) -> service.CheckoutSession:
    """A paid session must say what was paid."""
    if session.amount_total is None or session.currency is None:
        raise MalformedSession("A paid session must carry amount_total and currency.")
    return session


def _purchase_id(raw, name: str) -> int | None:
    if raw is None:
        return None
    value = validation.ascii_int(raw) if isinstance(raw, str) else None
    if not value:
        raise MalformedSession(f"The session's {name} is not a purchase id.")
    return value


def _text(raw, name: str, *, required: bool = False) -> str | None:
    if raw is None and not required:
        return None
    if not isinstance(raw, str) or not 0 < len(raw) <= 255 or validation.is_unsafe_text(raw):
        raise MalformedSession(f"The session's {name} is not an identifier.")
    return raw


def _currency(raw) -> str | None:
    if raw is None:
        return None
    if not (isinstance(raw, str) and len(raw) == 3 and raw.isascii() and raw.isalpha()):
        raise MalformedSession("The session's currency is not a three-letter code.")
    return raw.lower()
