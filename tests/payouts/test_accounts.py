"""Stripe Connect Express onboarding: POST/GET /api/payouts/account and the
`account.updated` webhook (DESIGN.md §11), through the real SDK and the stand-in."""
from __future__ import annotations

import time

from sqlalchemy import text

from app.extensions import db
from app.payouts import service
from tests.conftest import fresh_client
from tests.helpers import assert_error, run_together
from tests.payouts.helpers import event_outcome, fresh_user, signed_webhook


def account_row(user_id: int) -> dict | None:
    db.session.rollback()
    row = db.session.execute(text("SELECT * FROM payout_accounts WHERE user_id = :u"), {"u": user_id}).mappings()
    return next(iter([dict(r) for r in row]), None)


def test_onboarding_creates_one_express_account_and_a_link_back_to_payouts(
        on_stripe, stripe_standin, make_creator, api_headers):
    creator = make_creator()
    headers = api_headers(creator)
    client = fresh_client(on_stripe)
    assert client.get("/api/payouts/account", headers=headers).get_json() == {"status": "none",
                                                                              "payoutsEnabled": False}

    resp = client.post("/api/payouts/account", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (account_id,) = stripe_standin.accounts
    assert resp.get_json() == {"onboardingUrl": f"{stripe_standin.url}/onboard/{account_id}"}
    (created,) = stripe_standin.calls("POST", "/v1/accounts")
    assert created.params["type"] == "express" and created.params["email"] == creator.email
    assert created.params["metadata"] == {"user_id": str(creator.id)}
    assert created.idempotency_key == f"payout-account-{creator.id}"
    (link,) = stripe_standin.calls("POST", "/v1/account_links")
    assert link.params["account"] == account_id and link.params["type"] == "account_onboarding"
    assert link.params["return_url"] == "http://localhost/payouts?onboarding=done"
    assert link.params["refresh_url"] == "http://localhost/payouts?onboarding=refresh"
    assert account_row(creator.id)["stripe_account_id"] == account_id
    assert client.get("/api/payouts/account", headers=headers).get_json() == {"status": "pending",
                                                                              "payoutsEnabled": False}

    # Again (the link expired, the creator came back): a new link, the same account.
    again = client.post("/api/payouts/account", headers=headers)
    assert again.get_json() == resp.get_json()
    assert len(stripe_standin.calls("POST", "/v1/accounts")) == 1
    assert len(stripe_standin.calls("POST", "/v1/account_links")) == 2
    assert len(stripe_standin.accounts) == 1


def test_concurrent_onboarding_requests_create_one_account(on_stripe, stripe_standin, make_creator):
    creator = make_creator()
    creator_id = creator.id
    results = run_together(on_stripe, 8, lambda i: service.start_onboarding(
        fresh_user(creator_id), refresh_url="http://x/payouts?onboarding=refresh", return_url="http://x/payouts?onboarding=done"))
    assert not [r for r in results if isinstance(r, Exception)], results
    (account_id,) = stripe_standin.accounts
    assert set(results) == {f"{stripe_standin.url}/onboard/{account_id}"}
    assert len(stripe_standin.calls("POST", "/v1/accounts")) == 1
    assert account_row(creator.id)["stripe_account_id"] == account_id


def test_account_updated_webhook_makes_the_account_ready(on_stripe, stripe_standin, make_creator, api_headers):
    creator = make_creator()
    headers = api_headers(creator)
    client = fresh_client(on_stripe)
    client.post("/api/payouts/account", headers=headers)
    (account_id,) = stripe_standin.accounts

    event = stripe_standin.account_updated(account_id)
    resp = signed_webhook(client, event)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "handled", resp.get_json()
    row = account_row(creator.id)
    assert row["payouts_enabled"] is True and row["details_submitted"] is True
    assert client.get("/api/payouts/account", headers=headers).get_json() == {"status": "ready",
                                                                              "payoutsEnabled": True}
    # Delivered again: handled once.
    assert signed_webhook(client, event).get_json()["duplicate"] is True


def test_a_late_older_account_event_does_not_undo_a_newer_one(on_stripe, stripe_standin, make_creator, api_headers):
    creator = make_creator()
    client = fresh_client(on_stripe)
    client.post("/api/payouts/account", headers=api_headers(creator))
    (account_id,) = stripe_standin.accounts
    now = int(time.time())
    older = stripe_standin.account_updated(account_id, payouts_enabled=False)
    older["created"] = now - 60
    newer = stripe_standin.account_updated(account_id, payouts_enabled=True)
    newer["created"] = now
    assert signed_webhook(client, newer).get_json()["outcome"] == "handled"
    assert signed_webhook(client, older).get_json()["outcome"] == "stale"
    assert account_row(creator.id)["payouts_enabled"] is True
    # A newer "disabled" (Stripe wants more details) is recorded.
    later = stripe_standin.account_updated(account_id, payouts_enabled=False)
    later["created"] = now + 60
    assert signed_webhook(client, later).get_json()["outcome"] == "handled"
    assert account_row(creator.id)["payouts_enabled"] is False


def test_account_events_for_unknown_accounts_or_with_wrong_types_are_refused(
        on_stripe, stripe_standin, make_creator, api_headers):
    creator = make_creator()
    client = fresh_client(on_stripe)
    client.post("/api/payouts/account", headers=api_headers(creator))
    (account_id,) = stripe_standin.accounts
    good = {"id": account_id, "object": "account", "payouts_enabled": True, "details_submitted": True}
    bad_objects = [
        {**good, "id": "acct_not_ours"},
        {**good, "payouts_enabled": "true"}, {**good, "payouts_enabled": 1}, {**good, "payouts_enabled": None},
        {**good, "details_submitted": "yes"}, {k: v for k, v in good.items() if k != "payouts_enabled"},
        {**good, "id": 42}, {**good, "id": ""}, {**good, "id": "a" * 300}, {**good, "id": ["x"]},
    ]
    events = [stripe_standin.event("account.updated", obj) for obj in bad_objects]
    events.append(stripe_standin.event("account.updated", good, account="acct_someone_else"))
    for created in ("1700000000", 10**30, True, None, 1.5):
        wrong_time = stripe_standin.event("account.updated", good)
        wrong_time["created"] = created
        events.append(wrong_time)
    for event in events:
        resp = signed_webhook(client, event)
        assert resp.status_code == 200, (event, resp.get_data(as_text=True))
        assert resp.get_json()["outcome"] == "refused", (event, resp.get_json())
        assert event_outcome(event["id"]).startswith("refused"), event
    assert account_row(creator.id)["payouts_enabled"] is False


def test_account_routes_are_for_creators(client, make_fan, api_headers):
    fan = make_fan()
    headers = api_headers(fan)
    assert_error(client.get("/api/payouts/account", headers=headers), 403, "not_a_creator")
    assert_error(client.post("/api/payouts/account", headers=headers), 403, "not_a_creator")
    assert account_row(fan.id) is None
    assert_error(client.post("/api/payouts/account"), 401)


def test_demo_provider_account_is_ready_at_once(client, make_creator, api_headers):
    creator = make_creator()
    headers = api_headers(creator)
    resp = client.post("/api/payouts/account", headers=headers)
    assert resp.status_code == 200
    assert resp.get_json() == {"onboardingUrl": "http://localhost/payouts?onboarding=done"}
    assert client.get("/api/payouts/account", headers=headers).get_json() == {"status": "ready",
                                                                              "payoutsEnabled": True}
    assert account_row(creator.id)["stripe_account_id"] == f"acct_demo_{creator.id}"


def test_stripe_unreachable_during_onboarding_stores_nothing(on_stripe, stripe_standin, make_creator, api_headers):
    creator = make_creator()
    stripe_standin.outage = True
    resp = fresh_client(on_stripe).post("/api/payouts/account", headers=api_headers(creator))
    assert_error(resp, 503, "payment_provider_error")
    assert account_row(creator.id) is None
