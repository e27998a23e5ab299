"""What the wallet does with Checkout's webhook events (DESIGN.md §11): a paid
session credits its purchase exactly once — under concurrency, late, repeated or
out of order — and only when the amount and currency match; an expired session
or a failed asynchronous payment credits nothing; credits repay debt first."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from app import ledger
from app.extensions import db
from app.ledger import verify
from tests.conftest import fresh_client
from tests.helpers import run_together
from tests.realtime.helpers import Viewer
from tests.wallet.stripe_helpers import (credits_of, event_outcome, post_event, purchase_row, start_purchase,
                                         stripe_server, wallet_of)  # noqa: F401 (stripe_server: a fixture)


@pytest.fixture()
def pending(stripe_app, make_fan, api_headers):
    """(fan, pending purchase of 1,000 tokens for $10.00)."""
    fan = make_fan()
    return fan, start_purchase(stripe_app, api_headers(fan), 1000)


def session(stripe_standin, purchase) -> dict:
    return dict(stripe_standin.sessions[purchase["sessionId"]])


def test_a_paid_session_credits_the_purchase_and_keeps_its_payment_intent(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    event = stripe_standin.pay(purchase["sessionId"])
    assert post_event(stripe_app, event).get_json()["outcome"] == "credited"
    row = purchase_row(purchase["id"])
    assert row["status"] == "completed" and row["transfer_id"] is not None and row["completed_at"] is not None
    assert row["payment_intent"] == event["data"]["object"]["payment_intent"]
    assert row["flagged"] is None
    assert wallet_of(fan.id) == 1000
    db.session.rollback()
    legs = dict(db.session.execute(text(
        "SELECT a.kind, e.amount FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE e.transfer_id = :t"), {"t": row["transfer_id"]}).all())
    assert legs == {"token_sales": -1000, "wallet": 1000}
    kind = db.session.scalar(text("SELECT kind FROM ledger_transfers WHERE id = :t"), {"t": row["transfer_id"]})
    assert kind == "purchase"
    resp = fresh_client(stripe_app).get(f"/api/purchases/{purchase['id']}",
                                        headers={"Authorization": _bearer(fan)})
    assert resp.get_json()["purchase"]["status"] == "completed" and resp.get_json()["purchase"]["checkoutUrl"] is None
    assert verify() == []


def _bearer(user) -> str:
    from app.auth.service import issue_token
    return f"Bearer {issue_token(user)}"


def test_the_same_completed_event_delivered_20_times_at_once_credits_once(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    event = stripe_standin.pay(purchase["sessionId"])
    results = run_together(stripe_app, 20, lambda i: post_event(stripe_app, event))
    assert all(not isinstance(r, Exception) and r.status_code == 200 for r in results), results
    answers = [r.get_json() for r in results]
    assert sum(a.get("outcome") == "credited" for a in answers) == 1, answers
    assert sum(a.get("duplicate") is True for a in answers) == 19, answers
    assert wallet_of(fan.id) == 1000 and credits_of(purchase["id"]) == 1
    assert purchase_row(purchase["id"])["status"] == "completed"
    assert verify() == []


def test_distinct_paid_events_for_one_purchase_racing_credit_once(stripe_app, stripe_standin, pending):
    """completed and async_payment_succeeded (different event ids) at once: the purchase row lock decides."""
    fan, purchase = pending
    paid = stripe_standin.pay(purchase["sessionId"])
    events = [stripe_standin.event(t, paid["data"]["object"]) for t in
              ["checkout.session.completed", "checkout.session.async_payment_succeeded"] * 5]
    results = run_together(stripe_app, len(events), lambda i: post_event(stripe_app, events[i]))
    outcomes = sorted(r.get_json()["outcome"] for r in results)
    assert outcomes == ["already_credited"] * 9 + ["credited"], outcomes
    assert wallet_of(fan.id) == 1000 and credits_of(purchase["id"]) == 1
    assert verify() == []


@pytest.mark.parametrize("change,reason", [
    ({"amount_total": 999}, "paid 999 usd"),
    ({"amount_total": 100_000}, "paid 100000 usd"),
    ({"currency": "eur"}, "paid 1000 eur"),
    ({"currency": "USD", "amount_total": 1}, "paid 1 usd"),
])
def test_an_amount_or_currency_mismatch_credits_nothing_and_flags_the_purchase(stripe_app, stripe_standin, pending,
                                                                              change, reason):
    fan, purchase = pending
    paid = stripe_standin.pay(purchase["sessionId"])
    event = stripe_standin.event("checkout.session.completed", {**paid["data"]["object"], **change})
    assert post_event(stripe_app, event).get_json()["outcome"] == "flagged"
    row = purchase_row(purchase["id"])
    assert row["status"] == "pending" and row["transfer_id"] is None
    assert reason in row["flagged"] and "costs 1000 usd" in row["flagged"]
    assert row["payment_intent"] == paid["data"]["object"]["payment_intent"]  # the operator can refund it
    assert wallet_of(fan.id) == 0 and credits_of(purchase["id"]) == 0
    assert event_outcome(event["id"]) == "flagged"
    assert verify() == []


def test_the_currency_is_compared_case_blind(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    paid = stripe_standin.pay(purchase["sessionId"])
    event = stripe_standin.event("checkout.session.completed", {**paid["data"]["object"], "currency": "USD"})
    assert post_event(stripe_app, event).get_json()["outcome"] == "credited"


def test_an_expired_session_expires_the_purchase_and_credits_nothing(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    event = stripe_standin.expire(purchase["sessionId"])
    assert post_event(stripe_app, event).get_json()["outcome"] == "expired"
    row = purchase_row(purchase["id"])
    assert row["status"] == "expired" and row["transfer_id"] is None
    assert wallet_of(fan.id) == 0 and credits_of(purchase["id"]) == 0
    assert verify() == []


def test_completed_after_expired_still_credits(stripe_app, stripe_standin, pending):
    """Out of order: the money was taken, so the late payment counts."""
    fan, purchase = pending
    expired = stripe_standin.event("checkout.session.expired", {**session(stripe_standin, purchase),
                                                                "status": "expired"})
    paid = stripe_standin.pay(purchase["sessionId"])
    assert post_event(stripe_app, expired).get_json()["outcome"] == "expired"
    assert post_event(stripe_app, paid).get_json()["outcome"] == "credited"
    assert purchase_row(purchase["id"])["status"] == "completed" and wallet_of(fan.id) == 1000
    assert verify() == []


def test_expired_after_completed_changes_nothing(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    paid = stripe_standin.pay(purchase["sessionId"])
    assert post_event(stripe_app, paid).get_json()["outcome"] == "credited"
    late = stripe_standin.event("checkout.session.expired", {**paid["data"]["object"], "status": "expired"})
    assert post_event(stripe_app, late).get_json()["outcome"] == "already_settled"
    assert purchase_row(purchase["id"])["status"] == "completed" and wallet_of(fan.id) == 1000


def test_an_async_payment_waits_then_succeeds(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    completed = stripe_standin.pay(purchase["sessionId"], async_payment=True)
    assert completed["data"]["object"]["payment_status"] == "unpaid"
    assert post_event(stripe_app, completed).get_json()["outcome"] == "awaiting_payment"
    row = purchase_row(purchase["id"])
    assert row["status"] == "pending" and wallet_of(fan.id) == 0
    assert row["payment_intent"] == completed["data"]["object"]["payment_intent"]
    succeeded = stripe_standin.event("checkout.session.async_payment_succeeded",
                                     {**completed["data"]["object"], "payment_status": "paid"})
    assert post_event(stripe_app, succeeded).get_json()["outcome"] == "credited"
    assert purchase_row(purchase["id"])["status"] == "completed" and wallet_of(fan.id) == 1000
    assert verify() == []


def test_an_async_payment_that_fails_marks_the_purchase_failed(stripe_app, stripe_standin, pending):
    fan, purchase = pending
    completed = stripe_standin.pay(purchase["sessionId"], async_payment=True)
    post_event(stripe_app, completed)
    failed = stripe_standin.event("checkout.session.async_payment_failed", completed["data"]["object"])
    assert post_event(stripe_app, failed).get_json()["outcome"] == "failed"
    row = purchase_row(purchase["id"])
    assert row["status"] == "failed" and row["transfer_id"] is None and wallet_of(fan.id) == 0
    # A failed event repeated later (new event id) changes nothing more.
    again = stripe_standin.event("checkout.session.async_payment_failed", completed["data"]["object"])
    assert post_event(stripe_app, again).get_json()["outcome"] == "already_settled"
    assert verify() == []


def test_a_demo_purchase_cannot_be_settled_by_a_webhook(client, stripe_app, stripe_standin, make_fan, api_headers):
    fan = make_fan()
    demo = client.post("/api/tokens/purchase", json={"amountTokens": 500},
                       headers={**api_headers(fan), "Idempotency-Key": "demo-1"}).get_json()["purchase"]
    ref = purchase_row(demo["id"])["provider_ref"]
    event = stripe_standin.event("checkout.session.expired", {"id": ref, "client_reference_id": str(demo["id"])})
    assert post_event(stripe_app, event).get_json()["code"] == "unknown_purchase"
    assert purchase_row(demo["id"])["status"] == "completed"


def test_a_credit_repays_debt_first(stripe_app, stripe_standin, make_fan, make_creator, api_headers):
    """A fan bought 500 tokens, tipped 300, then the 500 were refunded: the wallet's
    200 went back and 300 became debt. Buying 1,000 repays the 300 first; 700 land
    in the wallet."""
    from app.tips.service import send_tip
    fan, creator = make_fan(balance=500), make_creator()
    send_tip(fan, creator.id, 300, "", None, "tip-before-refund")
    with stripe_app.app_context():
        holder = ledger.lock_holder(fan.id)
        ledger.transfer(ledger.TransferKind.PURCHASE_REVERSAL, f"test-refund:{fan.id}",
                        [*ledger.holder_take_back(holder, 500), ledger.Leg(ledger.system_account("token_sales"), 500)])
        db.session.execute(text("UPDATE purchases SET refunded_tokens = 500, status = 'refunded' WHERE user_id = :u"),
                           {"u": fan.id})
        db.session.commit()
        assert ledger.owed_by(fan.id) == 300 and verify() == []
    purchase = start_purchase(stripe_app, api_headers(fan), 1000)
    assert post_event(stripe_app, stripe_standin.pay(purchase["sessionId"])).get_json()["outcome"] == "credited"
    with stripe_app.app_context():
        assert ledger.owed_by(fan.id) == 0
    assert wallet_of(fan.id) == 700
    db.session.rollback()
    legs = dict(db.session.execute(text(
        "SELECT a.kind, e.amount FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE e.transfer_id = :t"), {"t": purchase_row(purchase["id"])["transfer_id"]}).all())
    assert legs == {"token_sales": -1000, "debt": 300, "wallet": 700}
    assert verify() == []
    # The history line says where the other 300 went, and what the pack cost.
    html = _wallet_html(stripe_app, fan)
    assert "Bought 1,000 tokens, 300 of them repaid what you owed" in html and "$10.00" in html


def _wallet_html(app, user) -> str:
    from tests.conftest import csrf_from
    client = fresh_client(app)
    client.post("/login", data={"email": user.email, "password": user.test_password,
                                "csrf_token": csrf_from(client, "/login")})
    return client.get("/wallet").get_data(as_text=True)


def test_a_credit_flips_the_purchase_live_on_the_buyers_socket(stripe_app, stripe_standin, stripe_server, pending,
                                                               api_headers):
    fan, purchase = pending
    me = Viewer(stripe_server.replace("http", "ws", 1) + "/ws/me", api_headers(fan))
    try:
        sync = me.receive(5)
        # The (re)connect state already carries the purchase, still waiting.
        assert f'id="purchase-{purchase["id"]}"' in sync and "Waiting for payment" in sync
        assert 'hx-swap-oob="outerHTML:#wallet-balance,#call-sink"' in sync
        post_event(stripe_app, stripe_standin.pay(purchase["sessionId"]))
        pushed = me.wait_for("Credited", 3)
        assert pushed, me.messages
        assert f'<div id="purchase-{purchase["id"]}" class="purchase" data-status="completed"' \
               f' hx-swap-oob="outerHTML:#purchase-{purchase["id"]},#call-sink">' in pushed
        assert '<span id="nav-balance" hx-swap-oob="true">1,000</span>' in pushed
        assert '<span data-testid="balance">1,000</span>' in pushed
    finally:
        me.close()


def test_an_expiry_is_pushed_with_a_try_again_link(stripe_app, stripe_standin, stripe_server, pending, api_headers):
    fan, purchase = pending
    me = Viewer(stripe_server.replace("http", "ws", 1) + "/ws/me", api_headers(fan))
    try:
        me.receive(5)
        post_event(stripe_app, stripe_standin.expire(purchase["sessionId"]))
        pushed = me.wait_for("Checkout expired", 3)
        assert pushed and 'href="/wallet?topup=1000#buy-heading"' in pushed and "Try again" in pushed
        assert "nav-balance" not in pushed  # nothing was credited
    finally:
        me.close()
