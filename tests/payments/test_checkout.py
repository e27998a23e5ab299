"""Buying tokens through Stripe Checkout: the purchase, its Checkout Session and the
way back (DESIGN.md §11). The real `stripe` SDK talks to the local stand-in."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from app.extensions import db
from app.ledger import verify
from tests.conftest import csrf_from, fresh_client
from tests.helpers import assert_error, run_together
from tests.wallet.stripe_helpers import buy, purchase_row, start_purchase, wallet_of

_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def purchases_of(user_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(text("SELECT count(*) FROM purchases WHERE user_id = :u"), {"u": user_id})


def claims_of(user_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(text("SELECT count(*) FROM idempotency_keys WHERE user_id = :u"), {"u": user_id})


@pytest.fixture()
def fan(make_fan, api_headers):
    """(fan, bearer headers) for a fan with an empty wallet."""
    user = make_fan()
    return user, api_headers(user)


# ---- the API -----------------------------------------------------------------------

def test_api_purchase_is_201_pending_with_the_checkout_url(stripe_app, stripe_standin, fan):
    user, headers = fan
    resp = buy(fresh_client(stripe_app), headers, 1000)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"purchase", "checkoutUrl"}
    purchase = body["purchase"]
    assert purchase["status"] == "pending" and purchase["amountTokens"] == 1000
    assert purchase["amountCents"] == 1000 and purchase["currency"] == "usd"  # 1 cent per token by default
    session_id = purchase_row(purchase["id"])["provider_ref"]
    assert body["checkoutUrl"] == f"{stripe_standin.url}/pay/{session_id}"
    assert wallet_of(user.id) == 0  # nothing credited before the payment


def test_the_checkout_session_names_the_purchase_and_its_price(stripe_app, stripe_standin, make_app, make_fan,
                                                               api_headers):
    """One session per purchase: mode payment, one line item priced in CURRENCY at
    TOKEN_PRICE_CENTS a token, the purchase id as client_reference_id, metadata and
    idempotency key, and URLs back to /wallet."""
    app = make_app(PAYMENTS_PROVIDER="stripe", STRIPE_API_BASE=stripe_standin.url, STRIPE_SECRET_KEY="sk_test_standin",
                   STRIPE_WEBHOOK_SECRET="whsec_x", CURRENCY="eur", TOKEN_PRICE_CENTS=3)
    user = make_fan()
    resp = buy(fresh_client(app), api_headers(user), 250)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    purchase = resp.get_json()["purchase"]
    assert (purchase["amountCents"], purchase["currency"]) == (750, "eur")
    [call] = stripe_standin.calls("POST", "/v1/checkout/sessions")
    p = call.params
    assert p["mode"] == "payment"
    assert p["client_reference_id"] == str(purchase["id"]) and p["metadata"] == {"purchase_id": str(purchase["id"])}
    assert call.idempotency_key == f"purchase-{purchase['id']}"
    [item] = p["line_items"]
    assert item["quantity"] == "1"
    assert item["price_data"]["currency"] == "eur" and item["price_data"]["unit_amount"] == "750"
    assert item["price_data"]["product_data"]["name"] == "250 tokens"
    success, cancel = urlsplit(p["success_url"]), urlsplit(p["cancel_url"])
    assert success.scheme == "http" and success.netloc  # absolute, as Stripe requires
    assert success.path == "/wallet" and parse_qs(success.query) == {"purchase": [str(purchase["id"])]}
    assert cancel.path == "/wallet" and not cancel.query
    row = purchase_row(purchase["id"])
    assert (row["provider"], row["status"], row["currency"], row["amount_cents"]) == ("stripe", "pending", "eur", 750)
    assert row["checkout_url"] == stripe_standin.sessions[row["provider_ref"]]["url"]
    assert row["transfer_id"] is None


def test_a_replay_returns_the_same_purchase_and_checkout_url(stripe_app, stripe_standin, fan):
    user, headers = fan
    client = fresh_client(stripe_app)
    first = buy(client, headers, 500, key="same-key")
    again = buy(client, headers, 500, key="same-key")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert purchases_of(user.id) == 1
    assert len(stripe_standin.calls("POST", "/v1/checkout/sessions")) == 1


def test_concurrent_replays_make_one_purchase_and_one_session(stripe_app, stripe_standin, fan):
    user, headers = fan
    results = run_together(stripe_app, 8, lambda i: buy(fresh_client(stripe_app), headers, 500, key="race"))
    assert all(not isinstance(r, Exception) and r.status_code == 201 for r in results), results
    assert len({r.get_json()["checkoutUrl"] for r in results}) == 1
    assert purchases_of(user.id) == 1
    assert len(stripe_standin.calls("POST", "/v1/checkout/sessions")) == 1


def test_same_key_other_amount_is_409(stripe_app, fan):
    user, headers = fan
    client = fresh_client(stripe_app)
    assert buy(client, headers, 500, key="k").status_code == 201
    assert_error(buy(client, headers, 600, key="k"), 409, "idempotency_key_reused")
    assert purchases_of(user.id) == 1


@pytest.mark.parametrize("failure", ["outage", "refusal"])
def test_stripe_failing_leaves_nothing_behind_and_answers_503(stripe_app, stripe_standin, fan, failure):
    user, headers = fan
    if failure == "outage":
        stripe_standin.outage = True  # 500s: the SDK retries, then gives up
    else:
        stripe_app.config["STRIPE_SECRET_KEY"] = "sk_test_wrong"  # a 401: Stripe refuses
        stripe_app.extensions.pop("stripe_client", None)
    resp = buy(fresh_client(stripe_app), headers, 500, key="try-again")
    assert_error(resp, 503, "payment_provider_error")
    assert purchases_of(user.id) == 0 and claims_of(user.id) == 0
    # Stripe is back: the same key now buys (the claim was released with the rest).
    stripe_standin.outage = False
    stripe_app.config["STRIPE_SECRET_KEY"] = "sk_test_standin"
    stripe_app.extensions.pop("stripe_client", None)
    again = buy(fresh_client(stripe_app), headers, 500, key="try-again")
    assert again.status_code == 201, again.get_data(as_text=True)
    assert purchases_of(user.id) == 1
    assert verify() == []


def test_get_purchase_answers_the_owner(stripe_app, fan):
    user, headers = fan
    purchase = start_purchase(stripe_app, headers, 700)
    resp = fresh_client(stripe_app).get(f"/api/purchases/{purchase['id']}", headers=headers)
    assert resp.status_code == 200
    body = resp.get_json()["purchase"]
    assert body["id"] == purchase["id"] and body["status"] == "pending"
    assert (body["amountTokens"], body["amountCents"], body["currency"]) == (700, 700, "usd")
    assert body["checkoutUrl"].endswith(f"/pay/{purchase['sessionId']}")


def test_get_purchase_of_someone_else_or_unknown_is_404(stripe_app, fan, make_fan, api_headers):
    user, headers = fan
    purchase = start_purchase(stripe_app, headers, 700)
    other = api_headers(make_fan())
    client = fresh_client(stripe_app)
    assert_error(client.get(f"/api/purchases/{purchase['id']}", headers=other), 404)
    assert_error(client.get("/api/purchases/999999999", headers=headers), 404)
    assert_error(client.get(f"/api/purchases/{2**63}", headers=headers), 404)
    assert_error(client.get(f"/api/purchases/{purchase['id']}"), 401)


def test_demo_purchases_are_unchanged_and_record_their_currency(client, fan):
    user, headers = fan
    resp = buy(client, headers, 1000)
    assert resp.status_code == 201
    body = resp.get_json()
    assert set(body) == {"newBalance", "purchase"} and body["newBalance"] == 1000
    assert body["purchase"]["status"] == "completed" and body["purchase"]["currency"] == "usd"
    assert body["purchase"]["checkoutUrl"] is None
    row = purchase_row(body["purchase"]["id"])
    assert row["currency"] == "usd" and row["provider"] == "demo" and row["checkout_url"] is None


# ---- the HTML buy sheet ----------------------------------------------------------------

def _logged_in(stripe_app, user):
    client = fresh_client(stripe_app)
    resp = client.post("/login", data={"email": user.email, "password": user.test_password,
                                       "csrf_token": csrf_from(client, "/login")})
    assert resp.status_code == 303
    html = client.get("/wallet").get_data(as_text=True)
    return client, re.search(r'name="csrf_token" value="([^"]+)"', html).group(1), _KEY.search(html).group(1)


def _sheet_post(client, csrf, key, amount, htmx, page="/wallet"):
    headers = {"HX-Request": "true", "HX-Current-URL": f"http://localhost{page}"} if htmx else {}
    return client.post("/wallet/purchase", data={"csrf_token": csrf, "idempotency_key": key, "amountTokens": amount},
                       headers=headers)


def test_the_buy_sheet_sends_an_htmx_buyer_to_checkout(stripe_app, stripe_standin, make_fan):
    user = make_fan()
    client, csrf, key = _logged_in(stripe_app, user)
    resp = _sheet_post(client, csrf, key, "1000", htmx=True)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [session_id] = stripe_standin.sessions
    assert resp.headers["HX-Redirect"] == f"{stripe_standin.url}/pay/{session_id}"
    # A double click (same sheet, same key) goes to the same Checkout.
    assert _sheet_post(client, csrf, key, "1000", htmx=True).headers["HX-Redirect"] == resp.headers["HX-Redirect"]
    assert purchases_of(user.id) == 1


def test_the_buy_sheet_redirects_a_plain_form_with_303(stripe_app, stripe_standin, make_fan):
    user = make_fan()
    client, csrf, key = _logged_in(stripe_app, user)
    resp = _sheet_post(client, csrf, key, "2,500", htmx=False)
    assert resp.status_code == 303
    [session] = stripe_standin.sessions.values()
    assert resp.headers["Location"] == session["url"] and session["amount_total"] == 2500


def test_the_buy_sheet_shows_stripe_being_down_inline(stripe_app, stripe_standin, make_fan):
    user = make_fan()
    client, csrf, key = _logged_in(stripe_app, user)
    stripe_standin.outage = True
    resp = _sheet_post(client, csrf, key, "500", htmx=True)
    assert resp.status_code == 503
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="buy-sheet"')
    assert 'id="custom-amount-error"' in html and "Try again in a moment" in html
    assert purchases_of(user.id) == 0


def test_a_replayed_sheet_after_payment_goes_back_to_the_wallet(stripe_app, stripe_standin, make_fan):
    """The buyer paid, then the old sheet is submitted again: nothing is left to pay."""
    from tests.wallet.stripe_helpers import post_event
    user = make_fan()
    client, csrf, key = _logged_in(stripe_app, user)
    _sheet_post(client, csrf, key, "500", htmx=False)
    [session_id] = stripe_standin.sessions
    assert post_event(stripe_app, stripe_standin.pay(session_id)).status_code == 200
    resp = _sheet_post(client, csrf, key, "500", htmx=True)
    purchase_id = stripe_standin.sessions[session_id]["client_reference_id"]
    assert resp.headers["HX-Redirect"] == f"/wallet?purchase={purchase_id}"
    assert wallet_of(user.id) == 500


def test_back_from_checkout_the_wallet_highlights_the_pending_purchase(stripe_app, stripe_standin, make_fan,
                                                                       api_headers):
    user = make_fan()
    purchase = start_purchase(stripe_app, api_headers(user), 1000)
    client, _, _ = _logged_in(stripe_app, user)
    html = client.get(f"/wallet?purchase={purchase['id']}").get_data(as_text=True)
    row = re.search(r'<li class="highlighted" aria-current="true">(.*?)</li>', html, re.S)
    assert row, html
    assert f'id="purchase-{purchase["id"]}"' in row.group(1)
    assert "Waiting for payment…" in row.group(1) and 'class="spinner"' in row.group(1)
    assert f'href="{stripe_standin.url}/pay/{purchase["sessionId"]}"' in row.group(1)
    assert "$10.00" in row.group(1)
    assert "You pay on Stripe" in html and "Test mode" not in html


def test_bought_from_a_stream_checkout_leads_back_to_it_through_the_wallet(stripe_app, stripe_standin, make_fan):
    """The sheet opened in a stream's tip modal: Checkout's success and cancel URLs
    carry the stream's path, and /wallet offers one step back to it."""
    from urllib.parse import parse_qs, urlsplit
    user = make_fan()
    client, csrf, key = _logged_in(stripe_app, user)
    assert _sheet_post(client, csrf, key, "500", htmx=True, page="/streams/42").status_code == 200
    [session] = stripe_standin.sessions.values()
    for url in (session["success_url"], session["cancel_url"]):
        assert parse_qs(urlsplit(url).query)["next"] == ["/streams/42"], url
    back = urlsplit(session["success_url"])
    html = client.get(f"{back.path}?{back.query}").get_data(as_text=True)
    assert re.search(r'<a class="button primary" href="/streams/42" data-testid="back-to">', html), html


@pytest.mark.parametrize("hostile", ["//evil.example/x", "/\\evil.example", "https://evil.example/", "/wallet?x=1",
                                     "/streams/1\t", "javascript:alert(1)"])
def test_the_wallet_offers_no_way_back_to_anything_but_a_page_of_this_site(stripe_app, make_fan, hostile):
    user = make_fan()
    client, _, _ = _logged_in(stripe_app, user)
    resp = client.get("/wallet", query_string={"next": hostile})
    assert resp.status_code == 200 and 'data-testid="back-to"' not in resp.get_data(as_text=True)


def test_bought_on_the_wallet_itself_checkout_comes_back_without_a_detour(stripe_app, stripe_standin, make_fan):
    user = make_fan()
    client, csrf, key = _logged_in(stripe_app, user)
    _sheet_post(client, csrf, key, "500", htmx=True)
    [session] = stripe_standin.sessions.values()
    assert "next=" not in session["success_url"] and "next=" not in session["cancel_url"]


def _form_action(resp) -> str:
    return re.search(r"form-action ([^;]+)", resp.headers["Content-Security-Policy"]).group(1)


def test_csp_lets_forms_go_to_the_providers_pages_only_with_stripe(client, stripe_app, stripe_standin, make_app):
    """A plain buy form is answered 303 → Checkout; browsers hold that redirect to form-action."""
    assert _form_action(client.get("/login")) == "'self'"  # demo: nowhere else
    assert _form_action(fresh_client(stripe_app).get("/login")) == f"'self' {stripe_standin.url}"
    real = make_app(PAYMENTS_PROVIDER="stripe", STRIPE_SECRET_KEY="sk_live_x", STRIPE_WEBHOOK_SECRET="whsec_x")
    assert _form_action(fresh_client(real).get("/login")) == \
        "'self' https://checkout.stripe.com https://connect.stripe.com"
