"""`POST /webhooks/stripe`: Stripe tells us what happened to a payment, refund,
dispute or connected account (DESIGN.md §11).

This module is transport, like app/realtime: it proves the event came from
Stripe (HMAC-SHA256 over "<t>.<payload>" with the platform's signing secret or
the Connect endpoint's; missing, forged or older than `TOLERANCE_SECONDS` →
400, nothing changes), makes sure each event id is handled at most once, and
hands the event's object to the feature that registered its type
(`register_handler`, at app creation). Unknown types are recorded and answered
200: Stripe sends many we don't need.

Each event is handled in one transaction with its `stripe_events` row, whose
primary key is the event id: twenty deliveries of one event at once queue on
that row, the first handles it, the rest find it done. Handlers must be
harmless when events arrive late or out of order (each says how). A handler
that finds the event unusable (unknown purchase, mismatched fields) raises an
`AppError`: everything it did is rolled back, the event is recorded with the
reason, and Stripe gets 200 (a retry would change nothing). Anything else (the
database down) is not recorded, so Stripe's retry handles it later.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable

import stripe
from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy import text

from app.errors import AppError, BadRequest
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("payments_webhooks", __name__)

TOLERANCE_SECONDS = 300


@dataclass
class Handled:
    """A handler's answer: what it did (kept on the event's row, for the operator),
    and what to publish once the transaction has committed."""
    outcome: str = "handled"
    after_commit: Callable[[], None] | None = None


# handler(obj, event) -> Handled: `obj` is the event's data.object, `event` the whole event (both plain JSON).
Handler = Callable[[dict, dict], Handled]


def register_handler(app: Flask, event_type: str, handler: Handler) -> None:
    """Route Stripe events of `event_type` to `handler` (one handler per type)."""
    handlers = app.extensions.setdefault("stripe_handlers", {})
    if event_type in handlers:
        raise RuntimeError(f"a handler for {event_type} is already registered")
    handlers[event_type] = handler


class InvalidSignature(BadRequest):
    code = "invalid_signature"


def _secrets() -> list[str]:
    config = current_app.config
    found = [config["STRIPE_WEBHOOK_SECRET"], config["STRIPE_CONNECT_WEBHOOK_SECRET"]]
    return [s for i, s in enumerate(found) if s and s not in found[:i]]


def verified_event(payload: bytes, signature: str | None) -> dict:
    """The event in `payload` if `signature` (the Stripe-Signature header) proves Stripe
    sent it within the last `TOLERANCE_SECONDS`; else `InvalidSignature`. A
    timestamp that far in the future is refused too (a clock that wrong is not Stripe's)."""
    if not signature:
        raise InvalidSignature("The Stripe-Signature header is missing.")
    secrets = _secrets()
    if not secrets:
        raise InvalidSignature("No webhook signing secret is configured.")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_SECONDS)
        except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
            continue
        break
    else:
        raise InvalidSignature("The Stripe-Signature header is invalid, forged or too old.")
    stamp = _timestamp(signature)
    if stamp is None or stamp > time.time() + TOLERANCE_SECONDS:
        raise InvalidSignature("The Stripe-Signature timestamp is in the future.")
    return _parse(payload)


def _timestamp(signature: str) -> int | None:
    for part in signature.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "t" and value.strip().isascii() and value.strip().isdigit():
            return int(value.strip())
    return None


def _parse(payload: bytes) -> dict:
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The event is not JSON.", "malformed_event") from None
    ok = (isinstance(event, dict) and _short_text(event.get("id")) and _short_text(event.get("type"), 64)
          and isinstance(event.get("data"), dict) and isinstance(event["data"].get("object"), dict)
          and (event.get("account") is None or _short_text(event.get("account"))))
    if not ok:
        raise BadRequest("The event lacks an id, a type or a data object.", "malformed_event")
    return event


def _short_text(value, limit: int = 255) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def receive(payload: bytes, signature: str | None) -> dict:
    """Verify and handle one delivery; commits. Returns the JSON answer for Stripe."""
    event = verified_event(payload, signature)
    handler = current_app.extensions.get("stripe_handlers", {}).get(event["type"])
    if not _claim(event):
        db.session.rollback()
        return {"received": True, "duplicate": True}
    if handler is None:
        _finish(event, "ignored")
        return {"received": True, "outcome": "ignored"}
    try:
        handled = handler(event["data"]["object"], event)
    except AppError as err:
        db.session.rollback()
        log.warning("stripe event %s (%s) changed nothing: %s", event["id"], event["type"], err.message)
        if not _claim(event):  # handled meanwhile by a concurrent delivery
            db.session.rollback()
            return {"received": True, "duplicate": True}
        _finish(event, f"refused: {err.code}"[:64])
        return {"received": True, "outcome": "refused", "code": err.code}
    _finish(event, handled.outcome[:64])
    publish_after_commit(handled, f"stripe event {event['id']}")
    return {"received": True, "outcome": handled.outcome}


def publish_after_commit(handled: Handled, what: str) -> None:
    """Run the handler's `after_commit` once its transaction has committed (the
    reconciliation job settles sessions through the same handlers). A failure
    is logged, never raised: the money has committed, and a lost live update
    must not make Stripe retry nor undo a job."""
    if handled.after_commit is not None:
        try:
            handled.after_commit()
        except Exception:
            log.exception("%s: publishing after commit failed", what)


def _claim(event: dict) -> bool:
    """Insert the event's row (waiting for a concurrent delivery of it to finish); False if it exists."""
    return db.session.execute(
        text("INSERT INTO stripe_events (id, type, account, outcome) VALUES (:id, :type, :account, 'handling') "
             "ON CONFLICT (id) DO NOTHING RETURNING id"),
        {"id": event["id"], "type": event["type"], "account": event.get("account")}).scalar() is not None


def _finish(event: dict, outcome: str) -> None:
    db.session.execute(text("UPDATE stripe_events SET outcome = :o WHERE id = :id"), {"o": outcome, "id": event["id"]})
    db.session.commit()


@bp.post("/webhooks/stripe")
def stripe_webhook():
    """Stripe's webhook endpoint: server to server, no session, no CSRF; the signature is the credential."""
    return jsonify(receive(request.get_data(), request.headers.get("Stripe-Signature")))


stripe_webhook.csrf_exempt = True
