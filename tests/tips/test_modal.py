"""The tip modal (HTMX): open, preview the split, send (DESIGN.md §4, §5 Tips, §7 errors, §8)."""
from __future__ import annotations

import html as htmllib
import re
import uuid
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from app import ledger
from app.extensions import db
from app.wallet import service as wallet
from tests.helpers import visible

HTMX = {"HX-Request": "true"}
_KEY = re.compile(r'<input type="hidden" name="idempotency_key" value="([^"]+)">')


# ---- helpers ----------------------------------------------------------------

def modal_key(html: str) -> str:
    keys = _KEY.findall(html)
    assert len(keys) == 1, keys
    return keys[0]


def tips_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM tips WHERE sender_id = :u"), {"u": user_id})


def earnings_of(user_id: int) -> int:
    return ledger.balance_of(ledger.account_for(user_id, "earnings"))


@pytest.fixture()
def scene(client, make_fan, make_creator, login, make_stream):
    """A logged-in fan (1,000 tokens, CSRF token at hand) and a creator live on a public stream."""
    fan, creator = make_fan(balance=1000), make_creator(name="Ada Live")
    stream = make_stream(creator, title="Ada's evening", live=True)
    csrf = login(fan)
    return SimpleNamespace(fan=fan, creator=creator, stream_id=stream.id, csrf=csrf)


def open_modal(client, s) -> str:
    resp = client.get(f"/tips/new?creator={s.creator.id}&stream={s.stream_id}", headers=HTMX)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def post_tip(client, s, key=None, amount="100", custom="", message="", creator_id=None, stream_id=None,
             csrf=None, htmx=True):
    data = {"csrf_token": s.csrf if csrf is None else csrf, "idempotency_key": key or str(uuid.uuid4()),
            "toCreatorId": str(creator_id if creator_id is not None else s.creator.id),
            "streamId": str(stream_id if stream_id is not None else s.stream_id),
            "amountTokens": amount, "customAmount": custom, "message": message}
    return client.post("/tips/send", data=data, headers=HTMX if htmx else {})


def assert_nothing_written(s, balance=1000):
    assert tips_of(s.fan.id) == 0
    assert wallet.wallet_balance(s.fan) == balance
    assert earnings_of(s.creator.id) == 0


# ---- opening the modal ---------------------------------------------------------------

def test_modal_shows_presets_the_80_percent_preview_a_key_and_a_message_counter(client, scene):
    """GET /tips/new?creator=&stream= → presets 50/100/250/500 (100 chosen), "Creator receives 80 tokens",
    a hidden idempotency key, the creator and stream, and a 0 / 280 message counter."""
    s = scene
    html = open_modal(client, s)
    assert 'role="dialog"' in html and "Tip Ada Live" in visible(html)
    presets = re.findall(r'<input type="radio" name="amountTokens" value="(\d+)"', html)
    assert presets == ["50", "100", "250", "500"]
    assert re.search(r'<input type="radio" name="amountTokens" value="100" checked>', html)
    assert "Creator receives 80 tokens" in visible(html)
    assert str(uuid.UUID(modal_key(html))) == modal_key(html)
    assert f'<input type="hidden" name="toCreatorId" value="{s.creator.id}">' in html
    assert f'<input type="hidden" name="streamId" value="{s.stream_id}">' in html
    assert 'name="csrf_token"' in html
    assert 'maxlength="280"' in html and 'data-counter="tip-message-count"' in html
    assert re.search(r'<span id="tip-message-count">0</span> / 280', html)
    assert '<label for="tip-message">Message' in html
    assert "Send tip" in visible(html)


def test_every_opening_of_the_modal_gets_a_fresh_key(client, scene):
    s = scene
    assert modal_key(open_modal(client, s)) != modal_key(open_modal(client, s))


@pytest.mark.parametrize("query", ["", "?creator=", "?creator=abc", "?creator=-1", "?creator=99999999999999999999"])
def test_modal_without_a_valid_creator_is_404(client, scene, query):
    assert client.get(f"/tips/new{query}", headers=HTMX).status_code == 404


@pytest.mark.parametrize("digits", ["\u00b2", "\u00b9\u00b2", "\u0663", "\uff11\uff12"],
                         ids=["superscript-2", "superscript-12", "arabic-indic-3", "fullwidth-12"])
def test_a_creator_id_in_non_ascii_digits_is_404_not_a_crash(client, scene, digits):
    """`str.isdigit()` says yes to these; `int()` crashes on some and misreads the others as an id."""
    s = scene
    assert client.get(f"/tips/new?creator={digits}", headers=HTMX).status_code == 404
    assert client.get(f"/tips/new?creator={s.creator.id}&stream={digits}&call={digits}",
                      headers=HTMX).status_code == 200
    resp = post_tip(client, s, creator_id=digits)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    resp = post_tip(client, s, stream_id=digits)  # no stream, then: a tip without context
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_modal_for_a_fan_is_404(client, scene, make_fan):
    other = make_fan()
    assert client.get(f"/tips/new?creator={other.id}", headers=HTMX).status_code == 404


def test_logged_out_modal_redirects_to_login(client, make_creator):
    creator = make_creator()
    resp = client.get(f"/tips/new?creator={creator.id}")
    assert resp.status_code == 302
    assert urlsplit(resp.headers["Location"]).path == "/login"


# ---- preview ---------------------------------------------------------------------------

@pytest.mark.parametrize("query,expected", [
    ("amountTokens=250", "Creator receives 200 tokens"),
    ("amountTokens=50", "Creator receives 40 tokens"),
    ("amountTokens=1", "Creator receives 0 tokens"),
    ("amountTokens=100&customAmount=1%2C000", "Creator receives 800 tokens"),
    ("customAmount=1%2C000", "Creator receives 800 tokens"),
    ("customAmount=+333+", "Creator receives 266 tokens"),
    ("amountTokens=500&customAmount=", "Creator receives 400 tokens"),
])
def test_preview_shows_what_the_creator_receives(client, query, expected):
    resp = client.get(f"/tips/preview?{query}", headers=HTMX)
    assert resp.status_code == 200
    assert visible(resp.get_data(as_text=True)) == expected
    assert 'id="tip-preview"' in resp.get_data(as_text=True)


@pytest.mark.parametrize("query", ["", "amountTokens=", "customAmount="])
def test_preview_with_no_amount_chosen_says_choose_an_amount_as_a_hint(client, query):
    resp = client.get(f"/tips/preview?{query}", headers=HTMX)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert visible(html) == "Choose an amount"
    assert 'class="hint tip-preview-hint"' in html and "data-invalid" not in html


@pytest.mark.parametrize("query,why", [
    ("customAmount=abc", "Enter a whole number of tokens, like 1000."),
    ("customAmount=1.5", "Enter a whole number of tokens, like 1000."),
    ("customAmount=-5", "Enter a whole number of tokens, like 1000."),
    ("customAmount=%D9%A1%D9%A2", "Enter a whole number of tokens, like 1000."),  # Arabic-Indic digits
    ("customAmount=" + "9" * 40, "Enter a whole number of tokens, like 1000."),
    ("customAmount=0", "The amount must be at least 1 token."),
    ("customAmount=100001", "The amount can be at most 100,000 tokens."),
    ("amountTokens=abc", "Enter a whole number of tokens, like 1000."),
])
def test_preview_of_an_invalid_amount_says_why_in_the_error_style(client, query, why):
    """Not a green "Choose an amount": the reason, styled as an error, marked for app.js to
    set aria-invalid on the field."""
    resp = client.get(f"/tips/preview?{query}", headers=HTMX)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert visible(html) == why
    assert re.search(r'<p id="tip-preview" class="field-error[^"]*"[^>]*data-invalid', html), html


# ---- sending ---------------------------------------------------------------------------

def test_sending_answers_tip_sent_and_an_out_of_band_nav_balance(client, scene):
    s = scene
    key = modal_key(open_modal(client, s))
    resp = post_tip(client, s, key=key, amount="100", message="Hello <b>Ada</b>")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "Tip sent" in html and "You tipped Ada Live 100 tokens." in visible(html)
    assert '<span id="nav-balance" hx-swap-oob="true">900</span>' in html
    row = db.session.execute(text("SELECT amount, creator_share, stream_id, message FROM tips WHERE sender_id = :u"),
                             {"u": s.fan.id}).one()
    assert tuple(row) == (100, 80, s.stream_id, "Hello <b>Ada</b>")
    assert wallet.wallet_balance(s.fan) == 900 and earnings_of(s.creator.id) == 80
    assert ledger.verify() == []


def test_a_custom_amount_with_thousands_separator_is_sent(client, scene):
    s = scene
    resp = post_tip(client, s, amount="100", custom="1,000")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert '<span id="nav-balance" hx-swap-oob="true">0</span>' in resp.get_data(as_text=True)
    assert earnings_of(s.creator.id) == 800


def test_plain_form_post_without_htmx_also_sends(client, scene):
    s = scene
    resp = post_tip(client, s, amount="50", htmx=False)
    assert resp.status_code == 200 and "Tip sent" in resp.get_data(as_text=True)
    assert wallet.wallet_balance(s.fan) == 950


def test_the_same_key_twice_makes_one_tip(client, scene):
    """A double click (or a retry) re-sends the modal's key: one tip, one debit, both answers "Tip sent"."""
    s = scene
    key = modal_key(open_modal(client, s))
    first = post_tip(client, s, key=key, amount="250")
    second = post_tip(client, s, key=key, amount="250")
    assert first.status_code == second.status_code == 200
    assert "Tip sent" in second.get_data(as_text=True)
    assert '<span id="nav-balance" hx-swap-oob="true">750</span>' in second.get_data(as_text=True)
    assert tips_of(s.fan.id) == 1
    assert wallet.wallet_balance(s.fan) == 750 and earnings_of(s.creator.id) == 200


def test_the_same_key_with_another_amount_is_refused_and_moves_nothing_more(client, scene):
    s = scene
    key = modal_key(open_modal(client, s))
    assert post_tip(client, s, key=key, amount="100").status_code == 200
    resp = post_tip(client, s, key=key, amount="500")
    assert resp.status_code == 409
    assert tips_of(s.fan.id) == 1 and wallet.wallet_balance(s.fan) == 900


@pytest.mark.parametrize("custom", ["abc", "0", "-5", "1.5", "100001", "1e3", "9" * 40])
def test_a_bad_custom_amount_is_422_with_the_error_inline_and_nothing_written(client, scene, custom):
    s = scene
    resp = post_tip(client, s, custom=custom, message="keep me")
    assert resp.status_code == 422, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert 'id="tip-form"' in html  # the modal, re-rendered, not an error page
    assert re.search(r'<p class="field-error" id="tip-amount-error" role="alert">\s*\S', html)
    assert 'aria-invalid="true" aria-describedby="tip-amount-error"' in html
    assert ">keep me</textarea>" in html  # what was typed is kept
    assert "Choose an amount" in visible(html)
    assert_nothing_written(s)


@pytest.mark.parametrize("custom", ["\u0663", "\uff11\uff12", "\u00b2", "1\u0663"],
                         ids=["arabic-indic-3", "fullwidth-12", "superscript-2", "mixed"])
def test_an_amount_in_non_ascii_digits_is_422_by_the_amount_field_and_nothing_written(client, scene, custom):
    """Only ASCII digits are an amount: "٣" and "１２" used to tip 3 and 12 tokens."""
    s = scene
    resp = post_tip(client, s, custom=custom)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    error = re.search(r'<p class="field-error" id="tip-amount-error" role="alert">(.*?)</p>', html, re.S)
    assert error and "Enter a whole number of tokens" in error.group(1)
    assert_nothing_written(s)


def test_no_amount_at_all_is_422_inline(client, scene):
    s = scene
    resp = post_tip(client, s, amount="", custom="")
    assert resp.status_code == 422
    assert 'id="tip-amount-error"' in resp.get_data(as_text=True)
    assert_nothing_written(s)


def test_a_message_over_280_characters_is_422_with_the_error_inline_and_nothing_written(client, scene):
    s = scene
    resp = post_tip(client, s, amount="100", message="<i>" + "m" * 278)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert re.search(r'<p class="field-error" id="tip-message-error" role="alert">[^<]*280', html)
    assert 'id="tip-amount-error"' not in html
    assert "&lt;i&gt;" + "m" * 278 + "</textarea>" in html  # kept, escaped
    assert "<i>m" not in html
    assert_nothing_written(s)


def test_a_message_of_280_characters_is_sent(client, scene):
    s = scene
    resp = post_tip(client, s, amount="100", message="m" * 280)
    assert resp.status_code == 200 and tips_of(s.fan.id) == 1


def test_insufficient_balance_is_402_with_the_shortfall_and_a_buy_link(client, make_fan, make_creator, login):
    """402, the error inline, and a "Buy N tokens" link carrying the exact shortfall."""
    fan, creator = make_fan(balance=70), make_creator()
    s = SimpleNamespace(fan=fan, creator=creator, stream_id="", csrf=login(fan))
    resp = post_tip(client, s, amount="250", message="all in")
    assert resp.status_code == 402, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert 'id="tip-amount-error"' in html and "180" in visible(html)
    link = re.search(r'<a href="([^"]+)" hx-get="([^"]+)"[^>]*data-testid="topup-link">([^<]+)</a>', html)
    assert link, html
    href, hx_get, label = (htmllib.unescape(g) for g in link.groups())
    assert label.strip() == "Buy 180 tokens"
    assert urlsplit(href).path == "/wallet" and parse_qs(urlsplit(href).query) == {"topup": ["180"]}
    assert urlsplit(hx_get).path == "/wallet/buy" and parse_qs(urlsplit(hx_get).query) == {"amount": ["180"]}
    assert client.get(hx_get, headers=HTMX).status_code == 200
    assert tips_of(fan.id) == 0 and wallet.wallet_balance(fan) == 70 and earnings_of(creator.id) == 0


def test_large_shortfall_is_shown_with_thousands_separator(client, make_fan, make_creator, login):
    fan, creator = make_fan(balance=0), make_creator()
    s = SimpleNamespace(fan=fan, creator=creator, stream_id="", csrf=login(fan))
    resp = post_tip(client, s, custom="12,345")
    assert resp.status_code == 402
    assert re.search(r'data-testid="topup-link">Buy 12,345 tokens</a>', resp.get_data(as_text=True))
    assert "topup=12345" in resp.get_data(as_text=True)


def test_tipping_a_fan_is_404_and_writes_nothing(client, scene, make_fan):
    s = scene
    other = make_fan()
    resp = post_tip(client, s, creator_id=other.id, stream_id="")
    assert resp.status_code == 404
    assert_nothing_written(s)
    assert wallet.wallet_balance(other) == 0


def test_tipping_an_unknown_creator_is_404(client, scene):
    s = scene
    assert post_tip(client, s, creator_id=2 ** 62, stream_id="").status_code == 404
    assert_nothing_written(s)


def test_a_stream_of_another_creator_is_refused_and_writes_nothing(client, scene, make_stream):
    s = scene
    other_stream = make_stream(title="Other")
    resp = post_tip(client, s, stream_id=other_stream.id)
    assert resp.status_code == 403
    assert_nothing_written(s)


def test_sending_without_the_csrf_token_is_refused_and_writes_nothing(client, scene):
    s = scene
    resp = post_tip(client, s, csrf="")
    assert resp.status_code == 400
    assert_nothing_written(s)


def test_logged_out_send_moves_nothing(client, new_client, make_creator):
    from tests.conftest import csrf_from
    creator = make_creator()
    anon = new_client()
    token = csrf_from(anon, "/login")
    resp = anon.post("/tips/send", data={"csrf_token": token, "idempotency_key": "x", "toCreatorId": creator.id,
                                         "amountTokens": "100"})
    assert resp.status_code in (302, 401)
    assert earnings_of(creator.id) == 0


def test_a_tip_message_is_escaped_on_the_stream_page(client, scene):
    """Stored raw, always escaped when shown."""
    s = scene
    assert post_tip(client, s, message='<script>alert("x")</script>').status_code == 200
    html = client.get(f"/streams/{s.stream_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html or \
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert '<script>alert("x")</script>' not in html


# ---- the phone pass (issue 17): balance up front, the form ready again, top-ups --------------

def test_the_modal_says_how_many_tokens_the_fan_has(client, scene):
    s = scene
    html = open_modal(client, s)
    assert re.search(r'data-testid="tip-balance">You have 1,000 tokens</p>', html)


def test_a_sent_tip_answers_the_confirmation_above_a_form_ready_for_the_next(client, scene):
    """No "Done" step: the answer is the modal again with the confirmation, the same amount,
    an empty message, the new balance and a new key, so a second tip is one click."""
    s = scene
    key = modal_key(open_modal(client, s))
    resp = post_tip(client, s, key=key, amount="250", message="first!")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Tip sent. You tipped Ada Live 250 tokens." in visible(html)
    assert 'id="tip-form"' in html and modal_key(html) != key
    assert re.search(r'<input type="radio" name="amountTokens" value="250" checked>', html)
    assert "></textarea>" in html  # the message starts empty again
    assert "You have 750 tokens" in visible(html)
    assert "Done" not in visible(html)
    second = post_tip(client, s, key=modal_key(html), amount="250")
    assert second.status_code == 200 and tips_of(s.fan.id) == 2 and wallet.wallet_balance(s.fan) == 500


def test_the_amount_field_after_a_top_up_drops_the_shortfall_once_covered(client, scene):
    """GET /tips/amount (the field re-read on `balance-changed`): the error while the wallet is
    still short, with the new shortfall; none once it covers the amount; the choice kept."""
    s = scene
    resp = client.get("/tips/amount?amountTokens=100&customAmount=1%2C500", headers=HTMX)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Not enough tokens: 500 more needed." in visible(html) and "You have 1,000 tokens" in visible(html)
    assert 'aria-invalid="true" aria-describedby="tip-amount-error"' in html and 'value="1,500"' in html
    wallet.purchase_tokens(s.fan, 500, str(uuid.uuid4()))
    html = client.get("/tips/amount?amountTokens=100&customAmount=1%2C500", headers=HTMX).get_data(as_text=True)
    assert "Not enough" not in html and "tip-amount-error" not in html and "aria-invalid" not in html
    assert "You have 1,500 tokens" in visible(html) and "Creator receives 1,200 tokens" in visible(html)


@pytest.mark.parametrize("query", ["", "amountTokens=abc", "customAmount=%00", "customAmount=" + "9" * 5000,
                                   "customAmount=%ED%A0%80", "amountTokens=-1&customAmount=1e9"])
def test_the_amount_field_never_fails_on_bad_input(client, scene, query):
    resp = client.get(f"/tips/amount?{query}", headers=HTMX)
    assert resp.status_code in (200, 400), resp.status_code
    if resp.status_code == 200:
        assert 'id="tip-amount"' in resp.get_data(as_text=True)


def test_the_amount_field_needs_a_login(client):
    resp = client.get("/tips/amount", headers=HTMX)
    assert resp.status_code in (302, 401)
