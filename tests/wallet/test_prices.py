"""Prices everywhere (DESIGN.md §11): a token costs TOKEN_PRICE_CENTS in CURRENCY;
pack buttons, the custom amount, purchases, history lines and receipts all say
what the tokens cost, written by one function (`format_money`, the `money` filter)."""
from __future__ import annotations

import re

import pytest

from app.payments.providers import format_money
from tests.conftest import csrf_from, fresh_client


@pytest.mark.parametrize("cents,currency,shown", [
    (500, "usd", "$5.00"), (1, "usd", "$0.01"), (0, "usd", "$0.00"), (123_456_789, "usd", "$1,234,567.89"),
    (-250, "usd", "-$2.50"), (500, "eur", "5.00 EUR"), (500, "EUR", "5.00 EUR"), (5, "gbp", "0.05 GBP"),
    (500, "jpy", "500 JPY"), (1_000_000, "krw", "1,000,000 KRW"),
])
def test_format_money(cents, currency, shown):
    assert format_money(cents, currency) == shown


def test_the_money_filter_is_format_money(app):
    with app.app_context():
        render = app.jinja_env.from_string("{{ c | money(cur) }}").render
        assert render(c=1250, cur="usd") == "$12.50" and render(c=1250, cur="eur") == "12.50 EUR"
        assert render(c=None, cur="usd") == "—"


def _logged_in(app, user):
    client = fresh_client(app)
    client.post("/login", data={"email": user.email, "password": user.test_password,
                                "csrf_token": csrf_from(client, "/login")})
    return client


def test_every_pack_button_shows_its_price(client, make_fan, login):
    login(make_fan())
    html = client.get("/wallet").get_data(as_text=True)
    for pack, price in ((500, "$5.00"), (1000, "$10.00"), (2500, "$25.00")):
        button = re.search(rf'<button type="submit" class="pack" data-pack="{pack}">(.*?)</button>', html, re.S)
        assert button, html
        assert f'<span class="pack-price" aria-hidden="true">{price}</span>' in button.group(1)
        assert f'<span class="sr-only">Buy {pack:,} tokens for {price}</span>' in button.group(1)


def test_the_custom_amount_shows_the_price_of_one_token_and_of_what_is_typed(client, make_fan, login):
    login(make_fan())
    html = client.get("/wallet").get_data(as_text=True)
    assert re.search(r'<p id="custom-amount-price"[^>]*>One token costs \$0\.01', html)
    assert 'aria-describedby="custom-amount-price"' in html
    assert 'hx-get="/wallet/price"' in html and 'hx-target="#custom-amount-price"' in html
    for typed in ("1234", "1,234", " 1 234 "):  # read as the purchase reads it
        price = client.get("/wallet/price", query_string={"amountTokens": typed}).get_data(as_text=True)
        assert '1,234 tokens cost <strong data-testid="custom-price">$12.34</strong>' in price
        assert price.lstrip().startswith('<p id="custom-amount-price"')
    # A prefilled sheet (a top-up) shows its price from the start.
    html = client.get("/wallet?topup=250").get_data(as_text=True)
    assert "250 tokens cost <strong" in html and "$2.50" in html


@pytest.mark.parametrize("raw", ["", "0", "abc", "1.5", "-3", "100001", "9" * 40, "\u0663", "１２"])
def test_an_amount_the_sheet_would_not_sell_shows_the_price_of_one_token(client, make_fan, login, raw):
    login(make_fan())
    resp = client.get("/wallet/price", query_string={"amountTokens": raw})
    assert resp.status_code == 200
    assert "One token costs $0.01" in resp.get_data(as_text=True)


def test_the_price_preview_needs_a_login(client):
    assert client.get("/wallet/price?amountTokens=5").status_code == 302


def test_prices_follow_the_configured_price_and_currency(make_app, make_fan):
    app = make_app(CURRENCY="eur", TOKEN_PRICE_CENTS=2)
    client = _logged_in(app, make_fan())
    html = client.get("/wallet").get_data(as_text=True)
    assert '<span class="pack-price" aria-hidden="true">10.00 EUR</span>' in html  # 500 × 2 cents
    assert "One token costs 0.02 EUR" in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    resp = client.post("/wallet/purchase", data={"csrf_token": csrf, "idempotency_key": key, "amountTokens": "750"})
    html = resp.get_data(as_text=True)
    row = re.search(r'<tr id="entry-\d+">(.*?)</tr>', html, re.S).group(1)
    assert "Bought 750 tokens (test mode)" in row and '<span class="price-tag">15.00 EUR</span>' in row
    assert re.search(r'data-testid="purchase-price">15\.00 EUR<', html)
    receipt = re.search(r'href="(/wallet/receipts/\d+)"', html).group(1)
    assert "15.00 EUR (test mode, not charged)" in client.get(receipt).get_data(as_text=True)


def test_history_and_purchases_show_what_each_pack_cost(client, make_fan, login):
    fan = make_fan(balance=500)
    login(fan)
    html = client.get("/wallet").get_data(as_text=True)
    assert re.search(r'Bought 500 tokens \(test mode\) <span class="price-tag">\$5\.00</span>', html)
    purchases = re.search(r'<div id="wallet-purchases">(.*?)</ul>', html, re.S).group(1)
    assert "500 tokens" in purchases and "$5.00" in purchases and "Credited" in purchases
    assert "test mode" in purchases and 'href="/wallet/receipts/' in purchases


def test_a_wallet_without_purchases_says_so(client, make_fan, login):
    login(make_fan())
    html = client.get("/wallet").get_data(as_text=True)
    assert "No purchases yet." in html


def test_someone_elses_purchase_id_highlights_nothing(client, make_fan, login, api_headers):
    other = make_fan(balance=100)
    login(make_fan())
    from app.extensions import db
    from sqlalchemy import text
    theirs = db.session.scalar(text("SELECT id FROM purchases WHERE user_id = :u"), {"u": other.id})
    html = client.get(f"/wallet?purchase={theirs}").get_data(as_text=True)
    assert 'class="highlighted"' not in html and f'id="purchase-{theirs}"' not in html
