"""The reconciliation job (app/wallet/cron.py): a Checkout purchase whose webhook
never came is looked up at Stripe and settled the way the webhook would have
(DESIGN.md §11: a lost webhook loses nothing)."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from app.extensions import db
from app.ledger import verify
from app.wallet import cron
from tests.helpers import run_together
from tests.wallet.stripe_helpers import (credits_of, post_event, purchase_row, start_purchase,  # noqa: F401
                                         stripe_server, wallet_of)  # stripe_server: a fixture
from worker import cron_jobs


@pytest.fixture()
def pending(stripe_app, make_fan, api_headers):
    fan = make_fan()
    return fan, start_purchase(stripe_app, api_headers(fan), 1000)


def age(purchase_id: int, minutes: int) -> None:
    """Make the purchase (and its last look at Stripe) `minutes` old."""
    db.session.rollback()
    db.session.execute(text("UPDATE purchases SET created_at = now() - make_interval(mins => :m), "
                            "updated_at = CASE WHEN updated_at IS NULL THEN NULL "
                            "ELSE now() - make_interval(mins => :m) END WHERE id = :id"),
                       {"m": minutes, "id": purchase_id})
    db.session.commit()


@pytest.fixture()
def cron_log(caplog, monkeypatch):
    """caplog for the job's logger (Alembic's fileConfig in the session's migration disabled it)."""
    monkeypatch.setattr(logging.getLogger("app.wallet.cron"), "disabled", False)
    return caplog


def reconcile(stripe_app) -> dict:
    with stripe_app.app_context():
        return cron.reconcile_purchases()


def asked_about(stripe_standin, purchase, since: int = 0) -> int:
    """How often the purchase's session was looked up at Stripe (from request number `since` on)."""
    return sum(c.path == f"/v1/checkout/sessions/{purchase['sessionId']}" for c in stripe_standin.requests[since:])


def test_the_worker_runs_it_every_five_minutes(app):
    with app.app_context():
        assert (cron.reconcile_purchases, 300) in cron_jobs()


def test_a_paid_purchase_whose_webhook_was_lost_is_credited(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    stripe_standin.pay(purchase["sessionId"])  # paid at Checkout; the webhook never arrives
    age(purchase["id"], 31)
    result = reconcile(stripe_app)
    assert result["settled"] == {purchase["id"]: "credited"}
    row = purchase_row(purchase["id"])
    assert row["status"] == "completed" and row["payment_intent"] == stripe_standin.sessions[
        purchase["sessionId"]]["payment_intent"]
    assert wallet_of(fan.id) == 1000 and credits_of(purchase["id"]) == 1
    # The webhook arriving after all changes nothing.
    late = stripe_standin.event("checkout.session.completed", stripe_standin.sessions[purchase["sessionId"]])
    assert post_event(stripe_app, late).get_json()["outcome"] == "already_credited"
    assert wallet_of(fan.id) == 1000 and credits_of(purchase["id"]) == 1
    assert verify() == []


def test_the_hosted_checkout_with_webhooks_dropped_is_settled_too(stripe_app, stripe_standin, stripe_server,
                                                                  pending):
    """The stand-in's own Pay button, webhooks lost on the way."""
    import requests
    fan, purchase = pending
    stripe_standin.drop_webhooks = True
    resp = requests.post(f"{stripe_standin.url}/pay/{purchase['sessionId']}", allow_redirects=False, timeout=10)
    assert resp.status_code == 303 and stripe_standin.delivered == []
    assert purchase_row(purchase["id"])["status"] == "pending"
    age(purchase["id"], 45)
    assert reconcile(stripe_app)["settled"] == {purchase["id"]: "credited"}
    assert wallet_of(fan.id) == 1000


def test_an_expired_session_expires_its_purchase(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    stripe_standin.expire(purchase["sessionId"])
    age(purchase["id"], 60)
    assert reconcile(stripe_app)["settled"] == {purchase["id"]: "expired"}
    assert purchase_row(purchase["id"])["status"] == "expired" and wallet_of(fan.id) == 0


def test_recent_purchases_are_left_to_the_webhook(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    stripe_standin.pay(purchase["sessionId"])
    age(purchase["id"], 29)
    assert purchase["id"] not in reconcile(stripe_app)["settled"]
    assert asked_about(stripe_standin, purchase) == 0
    assert purchase_row(purchase["id"])["status"] == "pending"


def test_an_open_session_is_asked_about_again_only_after_the_delay(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    age(purchase["id"], 40)
    assert purchase["id"] not in reconcile(stripe_app)["settled"]
    assert asked_about(stripe_standin, purchase) == 1
    assert purchase_row(purchase["id"])["status"] == "pending"
    reconcile(stripe_app)  # just looked at: not again yet
    assert asked_about(stripe_standin, purchase) == 1
    age(purchase["id"], 40)
    stripe_standin.pay(purchase["sessionId"])
    assert reconcile(stripe_app)["settled"][purchase["id"]] == "credited"


def test_stripe_down_leaves_everything_pending_for_the_next_run(stripe_app, stripe_standin, pending, cron_log):
    fan, purchase = pending
    stripe_standin.pay(purchase["sessionId"])
    age(purchase["id"], 31)
    stripe_standin.outage = True
    with cron_log.at_level(logging.WARNING, logger="app.wallet.cron"):
        result = reconcile(stripe_app)
    assert purchase["id"] not in result["settled"]
    assert "Stripe unavailable" in cron_log.text
    assert purchase_row(purchase["id"])["status"] == "pending" and wallet_of(fan.id) == 0
    stripe_standin.outage = False
    assert reconcile(stripe_app)["settled"][purchase["id"]] == "credited"
    assert wallet_of(fan.id) == 1000


def test_a_mismatched_payment_is_flagged_and_then_left_to_the_operator(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    stripe_standin.pay(purchase["sessionId"])
    stripe_standin.sessions[purchase["sessionId"]]["amount_total"] = 1
    age(purchase["id"], 31)
    assert reconcile(stripe_app)["settled"][purchase["id"]] == "flagged"
    assert purchase_row(purchase["id"])["flagged"] and wallet_of(fan.id) == 0
    age(purchase["id"], 31)
    before = len(stripe_standin.requests)
    assert purchase["id"] not in reconcile(stripe_app)["settled"]
    assert asked_about(stripe_standin, purchase, since=before) == 0


def test_the_job_and_the_webhook_racing_credit_once(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    event = stripe_standin.pay(purchase["sessionId"])
    age(purchase["id"], 31)

    def one(i):
        return reconcile(stripe_app) if i % 2 else post_event(stripe_app, event).status_code
    results = run_together(stripe_app, 6, one)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert wallet_of(fan.id) == 1000 and credits_of(purchase["id"]) == 1
    assert verify() == []


def test_a_run_with_nothing_to_do_logs_only_at_debug(ctx, stripe_app, cron_log):
    db.session.rollback()
    db.session.execute(text("UPDATE purchases SET updated_at = now() WHERE status = 'pending' AND provider = 'stripe'"))
    db.session.commit()
    with cron_log.at_level(logging.DEBUG, logger="app.wallet.cron"):
        result = reconcile(stripe_app)
    assert result == {"checked": 0, "settled": {}, "failed": 0}
    records = [r for r in cron_log.records if r.name == "app.wallet.cron"]
    assert records and all(r.levelno == logging.DEBUG for r in records)


def test_with_the_demo_provider_it_does_nothing(app, cron_log):
    with app.app_context(), cron_log.at_level(logging.DEBUG, logger="app.wallet.cron"):
        assert cron.reconcile_purchases() == {"checked": 0, "settled": {}, "failed": 0}
    assert all(r.levelno == logging.DEBUG for r in cron_log.records if r.name == "app.wallet.cron")
