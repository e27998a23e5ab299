"""`POST /webhooks/stripe`, the transport (DESIGN.md §11): only Stripe's signed,
fresh events are heard, each event id once; unknown types are ignored; bad
bodies are refused — never a 500, never a change."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from app.extensions import db
from app.ledger import verify
from tests.helpers import assert_error
from tests.payments import standin as stripe
from tests.wallet.stripe_helpers import (credits_of, event_outcome, post_event, purchase_row, start_purchase,
                                         wallet_of)


def stripe_events() -> int:
    db.session.rollback()
    return db.session.scalar(text("SELECT count(*) FROM stripe_events"))


@pytest.fixture()
def paid(stripe_app, stripe_standin, make_fan, api_headers):
    """(fan, purchase, its signed-ready checkout.session.completed event): paid at Checkout, not yet heard of."""
    fan = make_fan()
    purchase = start_purchase(stripe_app, api_headers(fan), 1000)
    return fan, purchase, stripe_standin.pay(purchase["sessionId"])


def nothing_changed(fan, purchase, events_before: int) -> None:
    assert purchase_row(purchase["id"])["status"] == "pending"
    assert wallet_of(fan.id) == 0 and credits_of(purchase["id"]) == 0
    assert stripe_events() == events_before


def test_a_signed_event_is_handled_once(stripe_app, paid):
    fan, purchase, event = paid
    resp = post_event(stripe_app, event)
    assert resp.status_code == 200 and resp.get_json() == {"received": True, "outcome": "credited"}
    assert wallet_of(fan.id) == 1000 and event_outcome(event["id"]) == "credited"


@pytest.mark.parametrize("signature", [
    pytest.param("", id="missing"),
    pytest.param("t=123,v1=", id="empty-mac"),
    pytest.param("garbage", id="garbage"),
    pytest.param("v1=" + "0" * 64, id="no-timestamp"),
])
def test_a_missing_or_malformed_signature_is_400_and_changes_nothing(stripe_app, paid, signature):
    fan, purchase, event = paid
    before = stripe_events()
    assert_error(post_event(stripe_app, event, signature=signature), 400, "invalid_signature")
    nothing_changed(fan, purchase, before)


def test_a_forged_signature_is_400_and_changes_nothing(stripe_app, paid):
    fan, purchase, event = paid
    before = stripe_events()
    assert_error(post_event(stripe_app, event, secret="whsec_someone_else"), 400, "invalid_signature")
    # A genuine signature over another body does not carry over to this one.
    other = json.dumps({**event, "id": "evt_other"})
    assert_error(post_event(stripe_app, json.dumps(event), signature=stripe.sign(other, stripe.WEBHOOK_SECRET)),
                 400, "invalid_signature")
    nothing_changed(fan, purchase, before)


@pytest.mark.parametrize("age", [301, 3600, -301, -86400], ids=["stale-301s", "stale-1h", "future-301s", "future-1d"])
def test_a_stale_or_future_signature_is_400_and_changes_nothing(stripe_app, paid, age):
    fan, purchase, event = paid
    before = stripe_events()
    assert_error(post_event(stripe_app, event, timestamp=int(time.time()) - age), 400, "invalid_signature")
    nothing_changed(fan, purchase, before)


def test_a_signature_a_few_minutes_old_is_accepted(stripe_app, paid):
    fan, purchase, event = paid
    assert post_event(stripe_app, event, timestamp=int(time.time()) - 240).status_code == 200
    assert wallet_of(fan.id) == 1000


def test_the_connect_endpoints_secret_is_accepted_too(stripe_app, paid):
    fan, purchase, event = paid
    resp = post_event(stripe_app, event, secret=stripe.CONNECT_WEBHOOK_SECRET)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "credited"


def test_an_unknown_type_is_200_and_ignored(ctx, stripe_app, stripe_standin):
    event = stripe_standin.event("customer.created", {"id": "cus_1", "object": "customer"})
    resp = post_event(stripe_app, event)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "ignored"
    assert event_outcome(event["id"]) == "ignored"


def test_a_replayed_event_is_200_with_no_effect(stripe_app, paid):
    fan, purchase, event = paid
    assert post_event(stripe_app, event).get_json()["outcome"] == "credited"
    for _ in range(3):
        resp = post_event(stripe_app, event)
        assert resp.status_code == 200 and resp.get_json() == {"received": True, "duplicate": True}
    assert wallet_of(fan.id) == 1000 and credits_of(purchase["id"]) == 1
    assert verify() == []


@pytest.mark.parametrize("payload", [
    pytest.param("not json", id="not-json"),
    pytest.param("[]", id="array"),
    pytest.param("{}", id="empty-object"),
    pytest.param('{"id": "evt_1", "type": "checkout.session.completed"}', id="no-data"),
    pytest.param('{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": []}}', id="object-list"),
    pytest.param('{"id": 5, "type": "checkout.session.completed", "data": {"object": {}}}', id="numeric-id"),
    pytest.param('{"id": "evt_1", "type": ["x"], "data": {"object": {}}}', id="list-type"),
    pytest.param('{"id": "' + "e" * 300 + '", "type": "x", "data": {"object": {}}}', id="long-id"),
    pytest.param(b"\xff\xfe\x00", id="binary"),
    pytest.param('{"id": "evt_1", "type": "x", "data": {"object": {}}, "account": 7}', id="numeric-account"),
])
def test_a_malformed_body_is_400_even_when_signed(stripe_app, paid, payload):
    fan, purchase, _ = paid
    before = stripe_events()
    resp = post_event(stripe_app, payload)
    assert_error(resp, 400, None)
    nothing_changed(fan, purchase, before)


# Every field of a paid session the wallet reads, wrong in every way Stripe never sends it.
BAD_FIELDS = [
    ("client_reference_id", [7, 7.0, True, [], {}, "", "abc", "-1", "1.5", "٣", "9" * 30, "0"]),
    ("metadata", ["x", 7, [], True]),
    ("metadata.purchase_id", [7, True, [], {}, "abc", "9" * 30, "0"]),
    ("amount_total", ["1000", 1000.0, 10.5, True, None, [], {}, -1, 2**63, 10**30]),
    ("currency", [None, 7, "", "us", "usdd", "u$d", ["usd"], {"x": 1}, "ü" * 3]),
    ("id", [None, 7, "", [], "s" * 300, "cs_\u0000"]),
    ("payment_status", [7, [], {}, True]),
    ("payment_intent", [7, [], {"id": "pi_1"}, True, ""]),
]


@pytest.mark.parametrize("field,values", BAD_FIELDS, ids=[f for f, _ in BAD_FIELDS])
def test_a_wrongly_typed_session_field_is_refused_and_changes_nothing(stripe_app, paid, field, values):
    fan, purchase, event = paid
    for i, value in enumerate(values):
        session = json.loads(json.dumps(event["data"]["object"]))
        if field.startswith("metadata."):
            session["metadata"][field.split(".", 1)[1]] = value
            session["client_reference_id"] = None  # the metadata alone names the purchase
        else:
            session[field] = value
        bad = {**event, "id": f"{event['id']}-{field}-{i}", "data": {"object": session}}
        resp = post_event(stripe_app, bad)
        assert resp.status_code < 500, (value, resp.get_data(as_text=True))
        if resp.status_code == 200:
            assert resp.get_json()["outcome"] == "refused", (field, value, resp.get_json())
        assert purchase_row(purchase["id"])["status"] == "pending", (field, value)
        assert wallet_of(fan.id) == 0 and credits_of(purchase["id"]) == 0
    # The genuine event still works afterwards: refusals claimed no purchase.
    assert post_event(stripe_app, event).get_json()["outcome"] == "credited"
    assert verify() == []


@pytest.mark.parametrize("event_type", ["checkout.session.completed", "checkout.session.async_payment_succeeded",
                                        "checkout.session.expired", "checkout.session.async_payment_failed"])
def test_every_checkout_event_type_refuses_a_non_object_session_body(ctx, stripe_app, stripe_standin, event_type):
    for obj in ({}, {"id": "cs_x"}, {"id": "cs_x", "client_reference_id": "1", "metadata": "x"}):
        event = stripe_standin.event(event_type, obj)
        resp = post_event(stripe_app, event)
        assert resp.status_code == 200 and resp.get_json()["outcome"] == "refused", resp.get_json()
        assert event_outcome(event["id"]).startswith("refused")


def test_refused_events_are_recorded_with_their_reason(stripe_app, stripe_standin, paid):
    fan, purchase, event = paid
    unknown = {**event["data"]["object"], "client_reference_id": "987654321", "metadata": {}}
    e1 = stripe_standin.event("checkout.session.completed", unknown)
    assert post_event(stripe_app, e1).get_json() == {"received": True, "outcome": "refused", "code": "unknown_purchase"}
    assert event_outcome(e1["id"]) == "refused: unknown_purchase"
    mismatched = {**event["data"]["object"], "id": "cs_test_not_ours"}
    e2 = stripe_standin.event("checkout.session.completed", mismatched)
    assert post_event(stripe_app, e2).get_json()["code"] == "session_mismatch"
    disagree = {**event["data"]["object"], "metadata": {"purchase_id": str(purchase["id"] + 1)}}
    e3 = stripe_standin.event("checkout.session.completed", disagree)
    assert post_event(stripe_app, e3).get_json()["code"] == "malformed_session"
    assert wallet_of(fan.id) == 0 and credits_of(purchase["id"]) == 0
    assert purchase_row(purchase["id"])["status"] == "pending"
