"""Shared by the Stripe Checkout tests (tests/payments/test_checkout*.py,
test_webhooks.py, tests/wallet, tests/browser/test_checkout.py): starting a
purchase through the real API of an app with PAYMENTS_PROVIDER=stripe, and
delivering signed webhook events the way Stripe does (the stand-in signs them
with the real scheme, tests/payments/standin.py)."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from app.extensions import db
from tests.conftest import fresh_client
from tests.payments import standin as stripe


def buy(client, headers: dict, amount: int = 1000, key: str | None = None):
    """POST /api/tokens/purchase through `client`; the response."""
    return client.post("/api/tokens/purchase", json={"amountTokens": amount},
                       headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())})


def start_purchase(stripe_app, headers: dict, amount: int = 1000) -> dict:
    """A pending Stripe purchase made through the API: its JSON, plus `sessionId`."""
    resp = buy(fresh_client(stripe_app), headers, amount)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    purchase = resp.get_json()["purchase"]
    assert purchase["status"] == "pending"
    purchase["sessionId"] = purchase_row(purchase["id"])["provider_ref"]
    return purchase


def post_event(app, event: dict | str | bytes, *, secret: str = stripe.WEBHOOK_SECRET, timestamp: int | None = None,
               signature: str | None = None):
    """POST one event to /webhooks/stripe, signed like Stripe signs (unless `signature` is given)."""
    payload = event if isinstance(event, (str, bytes)) else json.dumps(event)
    headers = {"Content-Type": "application/json"}
    sig = signature if signature is not None else _sign(payload, secret, timestamp)
    if sig:
        headers["Stripe-Signature"] = sig
    return fresh_client(app).post("/webhooks/stripe", data=payload, headers=headers)


def _sign(payload: str | bytes, secret: str, timestamp: int | None) -> str:
    """Stripe's scheme over any bytes (the stand-in's `sign` takes text only)."""
    if isinstance(payload, str):
        return stripe.sign(payload, secret, timestamp)
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + payload, hashlib.sha256).hexdigest()}"


def purchase_row(purchase_id: int) -> dict:
    """The purchase as the database has it now (plain SQL: no ORM cache in the way)."""
    db.session.rollback()
    row = db.session.execute(text("SELECT * FROM purchases WHERE id = :id"), {"id": purchase_id}).mappings().one()
    return dict(row)


def credits_of(purchase_id: int) -> int:
    """How many ledger transfers credited this purchase."""
    db.session.rollback()
    return db.session.scalar(text("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = :k"),
                             {"k": f"purchase:{purchase_id}"})


def wallet_of(user_id: int) -> int:
    db.session.rollback()
    return int(db.session.scalar(text(
        "SELECT coalesce((SELECT balance FROM ledger_accounts WHERE user_id = :u AND kind = 'wallet'), 0)"),
        {"u": user_id}))


def event_outcome(event_id: str) -> str | None:
    db.session.rollback()
    return db.session.scalar(text("SELECT outcome FROM stripe_events WHERE id = :id"), {"id": event_id})


def serve(stripe_app, standin):
    """Serve `stripe_app` over real HTTP (threaded, like live_server), with the
    stand-in's hosted pages delivering their webhooks there; yields the base URL
    (a generator for fixtures to `yield from`)."""
    server = make_server("127.0.0.1", 0, stripe_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    standin.webhook_url = f"{base}/webhooks/stripe"
    yield base
    server.shutdown()


@pytest.fixture()
def stripe_server(stripe_app, stripe_standin):
    """`stripe_app` served over real HTTP; yields the base URL (see `serve`)."""
    yield from serve(stripe_app, stripe_standin)
