"""Operator refunds from /platform and `POST /api/platform/purchases/<id>/refund`
(DESIGN.md §11): with Stripe the refund is asked for and the `charge.refunded`
webhook takes the tokens back; the demo provider refunds at once."""
from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid

import pytest
from werkzeug.serving import make_server

from app.payments.providers import format_money
from app.extensions import db
from app.ledger.verify import verify
from app.wallet.models import Purchase
from tests.conftest import fresh_client
from tests.helpers import assert_error, log_in, run_together, visible
from tests.wallet.reversal_helpers import (dispute_now, fresh, make_operator, owed, paid_purchase, post_event, spend,
                                           wallet_of)

HTMX = {"HX-Request": "true"}


def money(cents: int) -> str:
    """How the app writes an amount of dollars (the one money format)."""
    return format_money(cents, "usd")


def refund_api(client, headers, purchase_id, body, key=None):
    return client.post(f"/api/platform/purchases/{purchase_id}/refund", json=body,
                       headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())})


def stripe_key(purchase_id: int, operator_id: int, key: str) -> str:
    return f"purchase-{purchase_id}-refund-" + hashlib.sha256(f"{operator_id}:{key}".encode()).hexdigest()[:32]


@pytest.fixture()
def operator(make_user):
    return make_operator(make_user)


@pytest.fixture()
def stripe(stripe_app, stripe_standin):
    with stripe_app.app_context():
        yield fresh_client(stripe_app), stripe_standin
        db.session.remove()


# ---- Stripe --------------------------------------------------------------------------------

def test_a_stripe_refund_is_asked_for_and_the_webhook_takes_the_tokens_back(stripe, operator, make_fan,
                                                                           api_headers):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, 300, standin=standin)  # 3 cents a token
    headers = api_headers(operator)
    resp = refund_api(client, headers, purchase.id, {"amountCents": 120}, key="op-key-1")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    body = resp.get_json()
    refund_id = body["refund"]["id"]
    assert body["refund"] == {"id": refund_id, "amountCents": 120, "status": "pending"} and refund_id.startswith("re_")
    asked = standin.calls("POST", "/v1/refunds")
    assert len(asked) == 1
    assert asked[0].params["payment_intent"] == purchase.payment_intent and asked[0].params["amount"] == "120"
    assert asked[0].idempotency_key == stripe_key(purchase.id, operator.id, "op-key-1")
    # Nothing moved yet: the webhook does the ledger work.
    assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (0, 100)

    # The same request again: Stripe replays the same refund, nothing new is asked or moved.
    again = refund_api(client, headers, purchase.id, {"amountCents": 120}, key="op-key-1")
    assert again.status_code == 202 and again.get_json()["refund"]["id"] == refund_id
    assert len(standin.refunds) == 1

    answer = post_event(client, standin.charge_refunded(purchase.payment_intent, 120)).get_json()
    assert answer["outcome"] == "refunded"
    p = fresh(purchase.id)
    assert (p.status, p.refunded_tokens, wallet_of(fan.id)) == ("refunded", 40, 60)
    assert verify() == []


def test_the_platform_section_refunds_through_stripe_and_says_it_waits_for_stripe(stripe, stripe_app, operator,
                                                                                   make_fan):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    csrf = log_in(client, operator)
    form = client.get(f"/platform/purchases?refund={purchase.id}", headers=HTMX).get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
    resp = client.post(f"/platform/purchases/{purchase.id}/refund", headers=HTMX, data={
        "csrf_token": csrf, "idempotency_key": key, "choice": "part", "partTokens": "25", "fullTokens": "100",
        "confirm": "yes"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200, page[:800]
    notice = visible(re.search(r'data-testid="refund-notice">(.*?)</div>', page, re.S).group(1))
    assert notice.startswith(f"Refund of {money(25)} for purchase #{purchase.id} requested — waiting for Stripe.")
    assert standin.calls("POST", "/v1/refunds")[0].params["amount"] == "25"
    assert wallet_of(fan.id) == 100
    post_event(client, standin.charge_refunded(purchase.payment_intent, 25))
    assert wallet_of(fan.id) == 75
    assert verify() == []


def test_a_refund_stripe_refuses_or_cannot_take_changes_nothing_and_the_key_stays_free(stripe, operator, make_fan,
                                                                                        api_headers):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    headers = api_headers(operator)
    standin.outage = True
    assert_error(refund_api(client, headers, purchase.id, {"amountCents": 100}, key="k-outage"), 503,
                 "payment_provider_error")
    standin.outage = False
    standin.charges[purchase.payment_intent]["amount_refunded"] = 90  # refunded in Stripe's dashboard meanwhile
    assert_error(refund_api(client, headers, purchase.id, {"amountCents": 100}, key="k-outage"), 503,
                 "payment_provider_error")
    standin.charges[purchase.payment_intent]["amount_refunded"] = 0
    assert refund_api(client, headers, purchase.id, {"amountCents": 100}, key="k-outage").status_code == 202
    assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (0, 100)
    assert verify() == []


def test_a_live_refund_through_the_stand_in_reaches_the_webhook(stripe_app, stripe_standin, operator, make_fan,
                                                                api_headers):
    """The stand-in sends `charge.refunded` to a live server itself, as Stripe would."""
    server = make_server("127.0.0.1", 0, stripe_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stripe_standin.webhook_url = f"http://127.0.0.1:{server.server_port}/webhooks/stripe"
    try:
        with stripe_app.app_context():
            fan = make_fan()
            purchase = paid_purchase(fan, 100, standin=stripe_standin)
            resp = refund_api(fresh_client(stripe_app), api_headers(operator), purchase.id, {"amountCents": 100})
            assert resp.status_code == 202
            deadline = time.monotonic() + 10
            while fresh(purchase.id).status != "refunded" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (100, 0)
            assert verify() == []
            db.session.remove()
    finally:
        server.shutdown()


# ---- demo -------------------------------------------------------------------------------------

def test_a_demo_refund_applies_at_once_and_a_replay_moves_nothing(client, operator, make_fan, make_creator,
                                                                  api_headers):
    fan = make_fan()
    purchase = paid_purchase(fan, 100, provider="demo")
    spend(fan, make_creator(), 80)
    headers = api_headers(operator)
    resp = refund_api(client, headers, purchase.id, {"amountCents": 30}, key="demo-1")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["purchase"]["refundedTokens"] == 30 and body["purchase"]["status"] == "refunded"
    assert (wallet_of(fan.id), owed(fan.id)) == (0, 10)  # the wallet held 20: 10 more are owed
    assert refund_api(client, headers, purchase.id, {"amountCents": 30}, key="demo-1").status_code == 200
    assert (fresh(purchase.id).refunded_tokens, owed(fan.id)) == (30, 10)
    assert refund_api(client, headers, purchase.id, {"amountCents": 70}, key="demo-2").status_code == 200
    assert (fresh(purchase.id).refunded_tokens, owed(fan.id)) == (100, 80)
    assert_error(refund_api(client, headers, purchase.id, {"amountCents": 1}), 422, "refund_too_large")
    assert verify() == []


def test_the_platform_section_lists_searches_and_refunds_in_test_mode(client, operator, make_fan):
    fan = make_fan()
    purchase = paid_purchase(fan, 100, provider="demo")
    other = paid_purchase(make_fan(), 5, provider="demo")
    csrf = log_in(client, operator)
    page = client.get("/platform").get_data(as_text=True)
    assert 'hx-get="/platform/purchases" hx-trigger="load"' in page
    page = client.get(f"/platform?q=ada&refund={purchase.id}").get_data(as_text=True)
    assert f'hx-get="/platform/purchases?q=ada&amp;refund={purchase.id}" hx-trigger="load"' in page

    section = client.get("/platform/purchases", headers=HTMX).get_data(as_text=True)
    assert f'id="purchase-{purchase.id}"' in section and f'id="purchase-{other.id}"' in section
    for query in (str(purchase.id), f"#{purchase.id}", fan.email.split("@")[0].upper()):
        found = client.get("/platform/purchases", query_string={"q": query}, headers=HTMX).get_data(as_text=True)
        assert f'id="purchase-{purchase.id}"' in found and f'id="purchase-{other.id}"' not in found, query
    assert "No purchase matches" in client.get("/platform/purchases?q=nobody%25", headers=HTMX).get_data(as_text=True)
    long = client.get("/platform/purchases?q=" + "x" * 300, headers=HTMX)
    assert long.status_code == 422 and "at most 254 characters" in long.get_data(as_text=True)

    form = client.get(f"/platform/purchases?refund={purchase.id}", headers=HTMX).get_data(as_text=True)
    assert "Refund purchase #" in form and f"Everything left: 100 tokens ({money(100)})" in visible(form)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)

    def submit(**fields):
        data = {"csrf_token": csrf, "idempotency_key": key, "fullTokens": "100", **fields}
        return client.post(f"/platform/purchases/{purchase.id}/refund", headers=HTMX, data=data)

    for fields, status, message in [
        ({"choice": "full"}, 422, "Tick the box to confirm the refund."),
        ({"choice": "part", "partTokens": "", "confirm": "yes"}, 422, "Enter an amount of tokens."),
        ({"choice": "part", "partTokens": "1.5", "confirm": "yes"}, 422, "Enter a whole number of tokens"),
        ({"choice": "part", "partTokens": "101", "confirm": "yes"}, 422, f"Only 100 tokens ({money(100)})"),
    ]:
        resp = submit(**fields)
        assert resp.status_code == status, fields
        error = visible(re.search(r'data-testid="refund-error">(.*?)</p>', resp.get_data(as_text=True), re.S).group(1))
        assert error.startswith(message), (fields, error)
        assert fresh(purchase.id).refunded_tokens == 0

    done = submit(choice="full", confirm="yes")
    assert done.status_code == 200
    notice = visible(re.search(r'data-testid="refund-notice">(.*?)</div>', done.get_data(as_text=True), re.S).group(1))
    assert notice == (f"Purchase #{purchase.id}: {money(100)} refunded (test mode, no money moved); "
                      "its tokens were taken back.")
    assert (fresh(purchase.id).status, wallet_of(fan.id)) == ("refunded", 0)
    # The same form sent again (a double click) refunds nothing more; the row has no Refund button now.
    assert submit(choice="full", confirm="yes").status_code == 200
    assert fresh(purchase.id).refunded_tokens == 100
    listed = client.get(f"/platform/purchases?q={purchase.id}", headers=HTMX).get_data(as_text=True)
    assert f'refund={purchase.id}' not in listed and 'data-testid="purchase-status">refunded' in listed
    assert verify() == []


def test_a_plain_visit_to_the_section_goes_to_the_platform_page_which_loads_it_the_same(client, operator):
    log_in(client, operator)
    resp = client.get("/platform/purchases")
    assert resp.status_code == 303 and resp.headers["Location"] == "/platform"
    resp = client.get("/platform/purchases?q=ada&refund=7")
    assert resp.status_code == 303 and resp.headers["Location"] == "/platform?q=ada&refund=7"


# ---- who may, and what is refused -------------------------------------------------------------------

def test_only_operators_see_purchases_or_refund(client, make_fan, api_headers):
    fan = make_fan()
    purchase = paid_purchase(fan, 10, provider="demo")
    csrf = log_in(client, fan)
    assert client.get("/platform/purchases", headers=HTMX).status_code == 403
    resp = client.post(f"/platform/purchases/{purchase.id}/refund", headers=HTMX, data={
        "csrf_token": csrf, "idempotency_key": "x", "choice": "full", "fullTokens": "10", "confirm": "yes"})
    assert resp.status_code == 403
    assert_error(refund_api(client, api_headers(fan), purchase.id, {"amountCents": 10}), 403, "not_an_operator")
    assert_error(fresh_client(client.application).post(f"/api/platform/purchases/{purchase.id}/refund",
                                                       json={"amountCents": 10}), 401)
    assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (0, 10)


@pytest.mark.parametrize("amount", ["10", 10.0, 1.5, True, None, 0, -10, 10**30, [10], {"x": 1}])
def test_bad_amounts_are_422_and_move_nothing(client, operator, make_fan, api_headers, amount):
    fan = make_fan()
    purchase = paid_purchase(fan, 10, provider="demo")
    assert_error(refund_api(client, api_headers(operator), purchase.id, {"amountCents": amount}), 422,
                 field="amountCents")
    assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (0, 10)


def test_what_cannot_be_refunded_is_refused(client, operator, make_fan, api_headers):
    headers = api_headers(operator)
    fan = make_fan()
    priced = paid_purchase(fan, 10, 70, provider="demo")  # 7 cents a token
    assert_error(refund_api(client, headers, priced.id, {"amountCents": 10}), 422, field="amountCents")
    pending = Purchase(user_id=fan.id, amount_tokens=10, amount_cents=10, provider="demo")
    db.session.add(pending)
    db.session.commit()
    assert_error(refund_api(client, headers, pending.id, {"amountCents": 10}), 409, "not_refundable")
    disputed = paid_purchase(fan, 10, provider="demo")
    dispute_now(disputed, "dp_operator")
    assert_error(refund_api(client, headers, disputed.id, {"amountCents": 10}), 409, "not_refundable")
    assert_error(refund_api(client, headers, 9_999_999_999, {"amountCents": 10}), 404, "purchase_not_found")
    assert_error(client.post(f"/api/platform/purchases/{priced.id}/refund", json={"amountCents": 70},
                             headers=headers), 400, "idempotency_key_required")
    assert_error(client.post(f"/api/platform/purchases/{priced.id}/refund", data="{", content_type="application/json",
                             headers={**headers, "Idempotency-Key": "k"}), 400)
    assert refund_api(client, headers, priced.id, {"amountCents": 7}, key="reused").status_code == 200
    assert_error(refund_api(client, headers, priced.id, {"amountCents": 14}, key="reused"), 409,
                 "idempotency_key_reused")
    assert fresh(priced.id).refunded_tokens == 1 and wallet_of(fan.id) == 9
    assert fresh(disputed.id).refunded_tokens == 0
    assert verify() == []


def test_a_stripe_purchase_cannot_be_refunded_while_the_demo_provider_is_in_use(client, operator, make_fan,
                                                                                 api_headers):
    fan = make_fan()
    purchase = paid_purchase(fan, 10)  # paid at Stripe
    assert_error(refund_api(client, api_headers(operator), purchase.id, {"amountCents": 10}), 409, "not_refundable")
    assert wallet_of(fan.id) == 10


def test_hostile_form_fields_and_queries_from_an_operator_get_no_5xx_and_move_nothing(client, operator, make_fan):
    """tests/test_hostile_input.py walks these routes as fans and creators (403); an
    operator gets past that, so the fields are made hostile here too."""
    from tests.test_hostile_input import HOSTILE_TEXT, as_query
    fan = make_fan()
    purchase = paid_purchase(fan, 10, provider="demo")
    csrf = log_in(client, operator)
    base = {"csrf_token": csrf, "idempotency_key": str(uuid.uuid4()), "choice": "part", "partTokens": "0",
            "fullTokens": "10", "confirm": "yes", "q": ""}
    for name in ("choice", "partTokens", "fullTokens", "confirm", "q", "idempotency_key"):
        for value in HOSTILE_TEXT:
            fields = {**base, name: value}
            if name == "fullTokens":
                fields["choice"] = "full"
            for htmx in (True, False):
                resp = client.post(f"/platform/purchases/{purchase.id}/refund", headers=HTMX if htmx else {},
                                   data=as_query(fields.items()), content_type="application/x-www-form-urlencoded")
                assert resp.status_code < 500, (name, value[:40], resp.status_code)
    for name in ("q", "refund"):
        for value in HOSTILE_TEXT:
            resp = client.get(f"/platform/purchases?{as_query([(name, value)])}", headers=HTMX)
            assert resp.status_code < 500, (name, value[:40], resp.status_code)
    assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (0, 10)
    assert verify() == []


def test_concurrent_demo_refunds_never_refund_more_than_the_purchase(app, operator, make_fan, api_headers):
    """Ten operators' requests at once (real threads): with ten keys, three 30-token refunds
    fit in 100 tokens and the rest are refused; with one key, one refund happens."""
    fan = make_fan()
    purchase = paid_purchase(fan, 100, provider="demo")
    headers = api_headers(operator)
    answers = run_together(app, 10, lambda i: refund_api(fresh_client(app), headers, purchase.id,
                                                         {"amountCents": 30}).status_code)
    assert sorted(answers) == [200] * 3 + [422] * 7
    assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (90, 10)
    answers = run_together(app, 10, lambda i: refund_api(fresh_client(app), headers, purchase.id,
                                                         {"amountCents": 5}, key="one-key").status_code)
    assert answers == [200] * 10
    assert (fresh(purchase.id).refunded_tokens, wallet_of(fan.id)) == (95, 5)
    assert verify() == []
