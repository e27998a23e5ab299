"""The /wallet page, the HTMX buy sheet, history and receipts (DESIGN.md §5, §8)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from app.extensions import db

_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
_ROW = re.compile(r'<tr id="entry-\d+">(.*?)</tr>', re.S)
HTMX = {"HX-Request": "true", "HX-Current-URL": "http://localhost/wallet"}  # as htmx sends it from /wallet


# ---- helpers ----------------------------------------------------------------

def sheet_key(html: str) -> str:
    """The idempotency key rendered with the buy sheet (the same in every form of one render)."""
    keys = set(_KEY.findall(html))
    assert len(keys) == 1, keys
    return keys.pop()


def purchases_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM purchases WHERE user_id = :u"), {"u": user_id})


def transfer_ids_of(user_id: int) -> list[int]:
    return list(db.session.scalars(text(
        "SELECT transfer_id FROM purchases WHERE user_id = :u ORDER BY id"), {"u": user_id}))


def me(client) -> dict:
    return client.get("/api/wallet/me").get_json()


def shown_balance(html: str) -> str:
    return re.search(r'<span data-testid="balance">([^<]*)</span>', html).group(1)


def history_rows(html: str) -> list[str]:
    return _ROW.findall(html)


def post_purchase(client, csrf, amount, key, htmx=True):
    return client.post("/wallet/purchase", data={"csrf_token": csrf, "idempotency_key": key, "amountTokens": amount},
                       headers=HTMX if htmx else {})


# ---- the page ---------------------------------------------------------------------

@pytest.fixture()
def on_wallet(client, make_fan, login):
    """A logged-in fan with /wallet open: (fan, csrf token, the sheet's idempotency key)."""
    fan = make_fan()
    csrf = login(fan)
    return fan, csrf, sheet_key(client.get("/wallet").get_data(as_text=True))


def test_wallet_requires_login_and_redirects_to_login_with_next(client):
    resp = client.get("/wallet")
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/login" and location.query == "next=%2Fwallet"


@pytest.mark.parametrize("path", ["/wallet/history", "/wallet/buy", "/wallet/receipts/1"])
def test_every_wallet_page_requires_login(client, path):
    resp = client.get(path)
    assert resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login"


def test_wallet_shows_the_balance(client, make_fan, login):
    fan = make_fan(balance=1234)
    login(fan)
    html = client.get("/wallet").get_data(as_text=True)
    assert shown_balance(html) == "1,234"
    assert '<span id="nav-balance">1,234</span>' in html


def test_wallet_offers_the_configured_token_packs(app, client, make_fan, login):
    assert app.config["TOKEN_PACKS"] == (500, 1000, 2500)
    fan = make_fan()
    login(fan)
    html = client.get("/wallet").get_data(as_text=True)
    for pack, label in ((500, "500"), (1000, "1,000"), (2500, "2,500")):
        assert f'data-pack="{pack}"' in html
        assert f'<input type="hidden" name="amountTokens" value="{pack}">' in html
        assert f"Buy {label} tokens" in html
    assert '<label for="custom-amount">Custom amount</label>' in html


def test_wallet_history_lists_each_purchase_with_its_reason_and_receipt_link(client, make_fan, login):
    fan = make_fan(balance=1000)
    login(fan)
    html = client.get("/wallet").get_data(as_text=True)
    (transfer_id,) = transfer_ids_of(fan.id)
    rows = history_rows(html)
    assert len(rows) == 1
    assert "Bought 1,000 tokens (test mode)" in rows[0]
    assert "+1,000" in rows[0]
    assert f'<a href="/wallet/receipts/{transfer_id}">Receipt</a>' in rows[0]


def test_empty_wallet_explains_there_is_no_history_yet(client, make_fan, login):
    fan = make_fan()
    login(fan)
    html = client.get("/wallet").get_data(as_text=True)
    assert shown_balance(html) == "0"
    assert "No tokens yet" in html and history_rows(html) == []


@pytest.mark.parametrize("path", ["/", "/login", "/signup", "/wallet", "/account"])
def test_test_mode_banner_is_on_every_page(client, make_fan, login, path):
    fan = make_fan()
    login(fan)
    html = client.get(path).get_data(as_text=True)
    assert "<strong>Test mode</strong>" in html


def test_test_mode_banner_is_shown_to_visitors_too(client):
    assert "<strong>Test mode</strong>" in client.get("/").get_data(as_text=True)


def test_buy_sheet_says_purchases_are_simulated(client, make_fan, login):
    fan = make_fan()
    login(fan)
    assert "Test mode: tokens are added instantly" in client.get("/wallet/buy").get_data(as_text=True)


# ---- buying through the sheet ---------------------------------------------------------

def test_htmx_pack_purchase_returns_the_sheet_and_out_of_band_balance(client, on_wallet):
    fan, csrf, key = on_wallet
    resp = post_purchase(client, csrf, "1000", key)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="buy-sheet"')
    assert "Added 1,000 tokens to your wallet." in html
    assert re.search(r'<p id="wallet-balance"[^>]*hx-swap-oob="outerHTML:#wallet-balance,#call-sink"[^>]*>.*?'
                     r'<span data-testid="balance">1,000</span>', html, re.S)
    assert re.search(r'<div id="wallet-purchases" hx-swap-oob="true">.*1,000 tokens.*\$10\.00.*Credited', html, re.S)
    assert '<span id="nav-balance" hx-swap-oob="true">1,000</span>' in html
    assert re.search(r'<div id="wallet-history" hx-swap-oob="true">.*Bought 1,000 tokens \(test mode\)', html, re.S)
    # The re-rendered sheet carries a new key, so the next click is a new purchase.
    assert sheet_key(html) != key
    assert me(client)["balance"] == 1000
    assert purchases_of(fan.id) == 1


def test_plain_form_pack_purchase_renders_the_whole_wallet(client, on_wallet):
    fan, csrf, key = on_wallet
    resp = post_purchase(client, csrf, "2500", key, htmx=False)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "<html" in html and shown_balance(html) == "2,500"
    assert "Added 2,500 tokens to your wallet." in html


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_the_same_sheet_key_posted_twice_buys_once(client, on_wallet, htmx):
    """A double click (or a retry) of one rendered sheet is one purchase."""
    fan, csrf, key = on_wallet
    first = post_purchase(client, csrf, "500", key, htmx=htmx)
    second = post_purchase(client, csrf, "500", key, htmx=htmx)
    assert first.status_code == second.status_code == 200
    assert shown_balance(second.get_data(as_text=True)) == "500"
    assert me(client)["balance"] == 500
    assert purchases_of(fan.id) == 1


def test_the_same_sheet_key_with_another_pack_is_refused_inline(client, on_wallet):
    fan, csrf, key = on_wallet
    assert post_purchase(client, csrf, "500", key).status_code == 200
    resp = post_purchase(client, csrf, "2500", key)
    assert resp.status_code == 409
    assert "already used for a different request" in resp.get_data(as_text=True)
    assert me(client)["balance"] == 500 and purchases_of(fan.id) == 1


@pytest.mark.parametrize("amount,message", [
    ("1.5", "Enter a whole number of tokens, like 1000."),
    ("abc", "Enter a whole number of tokens, like 1000."),
    ("-5", "Enter a whole number of tokens, like 1000."),
    ("1e3", "Enter a whole number of tokens, like 1000."),
    ("0", "The amount must be at least 1 token."),
    ("", "Enter an amount of tokens."),
    ("   ", "Enter a whole number of tokens, like 1000."),
    ("100001", "The amount can be at most 100,000 tokens."),
    ("9" * 40, "Enter a whole number of tokens, like 1000."),
    ("<b>5</b>", "Enter a whole number of tokens, like 1000."),
])
def test_bad_custom_amount_is_422_with_the_error_inline_in_the_sheet(client, on_wallet, amount, message):
    fan, csrf, key = on_wallet
    resp = post_purchase(client, csrf, amount, key)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="buy-sheet"') and "<html" not in html
    assert f'<p class="field-error" id="custom-amount-error" role="alert">{message}</p>' in html
    assert 'aria-invalid="true"' in html
    assert "<b>5</b>" not in html  # what the user typed comes back escaped
    assert me(client)["balance"] == 0
    assert purchases_of(fan.id) == 0


def test_bad_custom_amount_without_htmx_rerenders_the_whole_page_422(client, on_wallet):
    fan, csrf, key = on_wallet
    resp = post_purchase(client, csrf, "abc", key, htmx=False)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "<html" in html and 'id="custom-amount-error"' in html and 'value="abc"' in html
    assert purchases_of(fan.id) == 0


@pytest.mark.parametrize("typed,tokens,shown", [("1,000", 1000, "1,000"), (" 2 500 ", 2500, "2,500"),
                                                ("1", 1, "1"), ("100,000", 100_000, "100,000")])
def test_custom_amount_accepts_whole_numbers_with_separators(client, on_wallet, typed, tokens, shown):
    fan, csrf, key = on_wallet
    resp = post_purchase(client, csrf, typed, key)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert f"Added {shown} tokens to your wallet." in resp.get_data(as_text=True)
    assert me(client)["balance"] == tokens


def test_a_refused_custom_amount_keeps_the_key_usable(client, on_wallet):
    """The sheet re-rendered after an error works for the corrected amount."""
    fan, csrf, key = on_wallet
    bad = post_purchase(client, csrf, "abc", key)
    assert bad.status_code == 422
    assert post_purchase(client, csrf, "750", sheet_key(bad.get_data(as_text=True))).status_code == 200
    assert me(client)["balance"] == 750


def test_purchase_without_idempotency_key_is_refused_inline(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    resp = client.post("/wallet/purchase", data={"csrf_token": csrf, "amountTokens": "500"}, headers=HTMX)
    assert resp.status_code == 400
    assert "Idempotency-Key is required" in resp.get_data(as_text=True)
    assert purchases_of(fan.id) == 0


def test_purchase_without_csrf_token_is_400_and_buys_nothing(client, make_fan, login):
    fan = make_fan()
    login(fan)
    key = sheet_key(client.get("/wallet").get_data(as_text=True))
    resp = client.post("/wallet/purchase", data={"idempotency_key": key, "amountTokens": "500"}, headers=HTMX)
    assert resp.status_code == 400
    assert purchases_of(fan.id) == 0 and me(client)["balance"] == 0


def test_htmx_purchase_with_the_csrf_header_instead_of_the_field_works(client, on_wallet):
    """htmx sends the token as X-CSRFToken (base.html hx-headers)."""
    fan, csrf, key = on_wallet
    resp = client.post("/wallet/purchase", data={"idempotency_key": key, "amountTokens": "500"},
                       headers={**HTMX, "X-CSRFToken": csrf})
    assert resp.status_code == 200
    assert me(client)["balance"] == 500


def test_anonymous_purchase_is_sent_to_login_and_buys_nothing(client, ctx):
    from tests.conftest import csrf_from
    csrf = csrf_from(client, "/signup")
    resp = client.post("/wallet/purchase", data={"csrf_token": csrf, "idempotency_key": "anon",
                                                 "amountTokens": "500"})
    assert resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login"
    assert db.session.scalar(text("SELECT count(*) FROM idempotency_keys WHERE key = 'anon'")) == 0


def test_buy_sheet_can_be_prefilled_with_an_amount(client, make_fan, login):
    fan = make_fan()
    login(fan)
    html = client.get("/wallet/buy?amount=420").get_data(as_text=True)
    assert 'id="custom-amount"' in html and 'value="420"' in html
    assert 'value="420"' in client.get("/wallet?topup=420").get_data(as_text=True)


# ---- receipts --------------------------------------------------------------------

def test_receipt_shows_the_purchase(client, make_fan, login):
    fan = make_fan(balance=1000)
    login(fan)
    (transfer_id,) = transfer_ids_of(fan.id)
    resp = client.get(f"/wallet/receipts/{transfer_id}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert f"Receipt #{transfer_id}" in html
    assert "Bought 1,000 tokens (test mode)" in html
    assert "$10.00 (test mode, not charged)" in html


def test_receipt_of_another_users_transfer_is_404(client, make_fan, login):
    owner, snoop = make_fan(balance=500), make_fan()
    (transfer_id,) = transfer_ids_of(owner.id)
    login(snoop)
    resp = client.get(f"/wallet/receipts/{transfer_id}")
    assert resp.status_code == 404
    html = resp.get_data(as_text=True)
    assert "No such receipt." in html and "Bought 500 tokens" not in html


@pytest.mark.parametrize("transfer_id", ["0", "999999999", "9223372036854775807", "9223372036854775808",
                                         "99999999999999999999999"])
def test_receipt_of_a_transfer_that_does_not_exist_is_404(client, make_fan, login, transfer_id):
    fan = make_fan()
    login(fan)
    assert client.get(f"/wallet/receipts/{transfer_id}").status_code == 404


def test_receipt_with_a_non_numeric_id_is_404(client, make_fan, login):
    fan = make_fan()
    login(fan)
    assert client.get("/wallet/receipts/abc").status_code == 404
    assert client.get("/wallet/receipts/-1").status_code == 404


# ---- history pagination ---------------------------------------------------------------

def test_history_is_paginated_newest_first(client, make_fan, login):
    from app.wallet import service as wallet
    fan = make_fan()
    for i in range(30):
        wallet.purchase_tokens(fan, 1, f"page-test-{i}")
    login(fan)

    page1 = client.get("/wallet").get_data(as_text=True)
    rows1 = history_rows(page1)
    assert len(rows1) == 25
    assert "Page 1 of 2" in page1 and "Older →" in page1
    balances1 = [re.findall(r'<td class="num col-balance">([^<]*)</td>', r)[0] for r in rows1]
    assert balances1 == [str(n) for n in range(30, 5, -1)]

    for path, headers in (("/wallet?page=2", {}), ("/wallet/history?page=2", HTMX)):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        rows2 = history_rows(html)
        assert len(rows2) == 5
        assert [re.findall(r'<td class="num col-balance">([^<]*)</td>', r)[0] for r in rows2] == ["5", "4", "3", "2", "1"]
        assert "Page 2 of 2" in html and "← Newer" in html and "Older →" not in html
    fragment = client.get("/wallet/history?page=2", headers=HTMX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="wallet-history"') and "<html" not in fragment


@pytest.mark.parametrize("page", ["0", "-1", "abc", "99999", "9" * 50, "1.5", ""])
def test_out_of_range_history_pages_fall_back_to_a_real_page(client, make_fan, login, page):
    fan = make_fan(balance=500)
    login(fan)
    resp = client.get("/wallet", query_string={"page": page})
    assert resp.status_code == 200
    assert len(history_rows(resp.get_data(as_text=True))) == 1


def test_buying_from_the_sheet_inside_another_page_updates_only_the_sheet_and_nav_balance(client, on_wallet):
    """The sheet also opens in the tip modal: fragments that only exist on /wallet are not pushed there."""
    fan, csrf, key = on_wallet
    resp = client.post("/wallet/purchase", data={"csrf_token": csrf, "idempotency_key": key, "amountTokens": "500"},
                       headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/streams/1"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and html.lstrip().startswith('<div id="buy-sheet"')
    assert '<span id="nav-balance" hx-swap-oob="true">500</span>' in html
    assert 'id="wallet-balance"' not in html and 'id="wallet-history"' not in html


@pytest.mark.parametrize("page", ["\u00b2", "\u00b9\u00b2", "\u0663", "\uff11\uff12"],
                         ids=["superscript-2", "superscript-12", "arabic-indic-3", "fullwidth-12"])
def test_a_page_number_in_non_ascii_digits_shows_the_first_page_not_a_crash(client, make_fan, login, page):
    """`str.isdigit()` is True for these, and `int("²")` raised ValueError: a 500."""
    fan = make_fan(balance=500)
    login(fan)
    for path, headers in (("/wallet", {}), ("/wallet/history", HTMX)):
        resp = client.get(path, query_string={"page": page}, headers=headers)
        assert resp.status_code == 200, (path, resp.status_code)
        assert len(history_rows(resp.get_data(as_text=True))) == 1
    for prefill in (client.get("/wallet/buy", query_string={"amount": page}),
                    client.get("/wallet", query_string={"topup": page})):
        assert prefill.status_code == 200
        assert 'id="custom-amount"' in prefill.get_data(as_text=True)


@pytest.mark.parametrize("amount", ["\u0663", "\uff11\uff12", "\u00b2"], ids=["arabic-indic-3", "fullwidth-12",
                                                                          "superscript-2"])
def test_a_custom_amount_in_non_ascii_digits_is_422_in_the_sheet_and_buys_nothing(client, on_wallet, amount):
    fan, csrf, key = on_wallet
    resp = post_purchase(client, csrf, amount, key)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert "Enter a whole number of tokens" in resp.get_data(as_text=True)
    assert purchases_of(fan.id) == 0


def test_a_receipt_id_in_non_ascii_digits_is_404(client, make_fan, login):
    """The `<int:>` URL converter takes ASCII digits only (werkzeug's own read "٣" as 3)."""
    fan = make_fan(balance=500)
    login(fan)
    (transfer_id,) = transfer_ids_of(fan.id)
    arabic = str(transfer_id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert client.get(f"/wallet/receipts/{transfer_id}").status_code == 200
    assert client.get(f"/wallet/receipts/{arabic}").status_code == 404


@pytest.mark.parametrize("current_url", ["http://[", "http://[::1", "http://]/", "::::", "\u00e9"])
def test_a_malformed_hx_current_url_still_answers_the_purchase_it_made(client, on_wallet, current_url):
    """Once a 500 *after* the purchase committed, saying nothing had changed."""
    fan, csrf, key = on_wallet
    resp = client.post("/wallet/purchase", data={"csrf_token": csrf, "idempotency_key": key, "amountTokens": "500"},
                       headers={"HX-Request": "true", "HX-Current-URL": current_url})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "Added 500 tokens to your wallet." in html
    assert '<span id="nav-balance" hx-swap-oob="true">500</span>' in html
    assert 'id="wallet-history"' not in html  # not on /wallet as far as anyone can tell
    assert me(client)["balance"] == 500 and purchases_of(fan.id) == 1
