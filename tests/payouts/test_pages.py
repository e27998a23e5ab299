"""/payouts for creators: balances, held amounts with their dates, the account with
"Set up payouts", the request form with inline errors, the history, the statement
picker (DESIGN.md §8, §11)."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from app.extensions import db
from app.payouts import service
from app.payouts.models import PayoutAccount
from tests.conftest import csrf_from
from tests.payouts.helpers import date_latest_earning, earnings_of, payouts_of, request

KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


@pytest.fixture()
def browse(client, login):
    """browse(user) → headers for htmx posts of `user`, logged in on `client`."""
    def _browse(user):
        token = login(user)
        return {"X-CSRFToken": token, "HX-Request": "true"}
    return _browse


def test_fans_get_a_403_page_with_a_way_back_and_no_nav_link(client, ctx, make_fan, browse):
    browse(make_fan())
    resp = client.get("/payouts")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 403 and "for creators" in html and 'href="/"' in html
    assert 'href="/payouts"' not in client.get("/wallet").get_data(as_text=True)
    assert client.post("/payouts/request", data={"amountTokens": "2000", "idempotency_key": "k",
                                                 "csrf_token": csrf_from(client, "/wallet")}).status_code == 403
    assert client.post("/payouts/account", data={"csrf_token": csrf_from(client, "/wallet")}).status_code == 403


def test_logged_out_visitors_are_sent_to_log_in(client):
    resp = client.get("/payouts")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_a_new_creator_sees_balances_held_dates_and_sets_up_payouts(client, ctx, make_creator, earn, browse, clock):
    creator = make_creator()
    earn(creator, 800)
    date_latest_earning(creator.id, clock.now)
    headers = browse(creator)
    html = client.get("/payouts").get_data(as_text=True)
    assert 'href="/payouts"' in html  # the nav link
    assert re.search(r'data-testid="available">0<', html) and re.search(r'data-testid="held">800<', html)
    assert "$8.00" in html
    frees = clock.now.date() + timedelta(days=7)
    assert f'available on <time datetime="{frees.isoformat()}">' in html
    assert 'data-status="none"' in html and "Set up payouts" in html
    assert 'id="payout-request-form"' not in html and "Set up your payout account above first" in html
    assert 'name="month"' in html and 'type="month"' in html and "/api/payouts/statement" in html

    resp = client.post("/payouts/account", headers=headers)
    assert resp.status_code == 200 and resp.headers["HX-Redirect"] == "http://localhost/payouts?onboarding=done"
    html = client.get("/payouts?onboarding=done").get_data(as_text=True)
    assert 'data-status="ready"' in html and "Payouts are set up" in html
    assert 'id="payout-request-form"' in html and "Minimum 2,000 tokens ($20.00)" in html


def test_a_payout_request_with_errors_inline_then_success_in_the_history(client, ctx, payee, browse):
    creator = payee(5000)
    headers = browse(creator)
    html = client.get("/payouts").get_data(as_text=True)
    key = KEY.search(html).group(1)
    csrf = headers["X-CSRFToken"]

    for amount, status, words in (("1999", 422, "at least 2,000"), ("1.5", 422, "whole number"),
                                  ("6,000", 402, "Only 5,000 tokens are available")):
        resp = client.post("/payouts/request", data={"amountTokens": amount, "idempotency_key": key,
                                                     "csrf_token": csrf}, headers=headers)
        html = resp.get_data(as_text=True)
        assert resp.status_code == status and words in html, html
        assert html.lstrip().startswith('<div id="payouts-body"')
        assert re.search(r'id="payout-amount"[^>]*value="' + re.escape(amount) + '"', html, re.S)
        assert 'aria-invalid="true"' in html and 'id="payout-amount-error"' in html
    assert payouts_of(creator.id) == [] and earnings_of(creator.id) == 5000

    resp = client.post("/payouts/request", data={"amountTokens": "3,000", "idempotency_key": key,
                                                 "csrf_token": csrf}, headers=headers)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Payout of 3,000 tokens requested." in html
    (row,) = payouts_of(creator.id)
    assert f'id="payout-{row["id"]}" data-status="requested"' in html and "$30.00" in html
    assert re.search(r'data-testid="available">2,000<', html)
    assert KEY.search(html).group(1) != key  # the next request gets a new key
    # The same form sent twice (a double click): one payout.
    again = client.post("/payouts/request", data={"amountTokens": "3,000", "idempotency_key": key,
                                                  "csrf_token": csrf}, headers=headers)
    assert again.status_code == 200 and len(payouts_of(creator.id)) == 1 and earnings_of(creator.id) == 2000


def test_without_htmx_a_request_redirects_back_to_the_page(client, ctx, payee, browse):
    creator = payee(4000)
    csrf = browse(creator)["X-CSRFToken"]
    resp = client.post("/payouts/request", data={"amountTokens": "2000", "idempotency_key": str(uuid.uuid4()),
                                                 "csrf_token": csrf})
    assert resp.status_code == 303 and resp.headers["Location"] == "/payouts"
    assert "Payout of 2,000 tokens requested." in client.get("/payouts").get_data(as_text=True)
    resp = client.post("/payouts/request", data={"amountTokens": "", "idempotency_key": str(uuid.uuid4()),
                                                 "csrf_token": csrf})
    assert resp.status_code == 422 and "<h1>Payouts</h1>" in resp.get_data(as_text=True)
    resp = client.post("/payouts/request", data={"amountTokens": "2000", "csrf_token": csrf})
    assert resp.status_code == 400 and "Idempotency-Key" in resp.get_data(as_text=True)
    assert len(payouts_of(creator.id)) == 1


def test_the_history_shows_each_status_with_its_reason(client, ctx, payee, make_fan, browse):
    creator = payee(8000)
    paid, rejected, waiting = (request(creator, 2000).payout for _ in range(3))
    service.pay(paid.id)
    operator = make_fan()
    operator.is_operator = True
    db.session.commit()
    service.reject(operator, rejected.id, "Tax form <missing>")
    browse(creator)
    html = client.get("/payouts").get_data(as_text=True)
    assert f'id="payout-{paid.id}" data-status="paid"' in html and "Sent <time" in html
    assert f'id="payout-{rejected.id}" data-status="rejected"' in html
    assert "Tax form &lt;missing&gt; Tokens returned to your earnings." in html
    assert f'id="payout-{waiting.id}" data-status="requested"' in html and "Being sent." in html
    assert html.index(f'id="payout-{waiting.id}"') < html.index(f'id="payout-{paid.id}"')  # newest first


def test_coming_back_from_onboarding_says_where_things_stand(client, ctx, make_creator, browse):
    creator = make_creator()
    browse(creator)
    html = client.get("/payouts?onboarding=refresh").get_data(as_text=True)
    assert "That setup link expired" in html and "Set up payouts" in html
    db.session.add(PayoutAccount(user_id=creator.id, stripe_account_id=f"acct_{uuid.uuid4().hex[:12]}"))
    db.session.commit()
    html = client.get("/payouts?onboarding=done").get_data(as_text=True)
    assert 'data-status="pending"' in html and "Stripe is checking your details" in html
    assert "Continue setup" in html and 'id="payout-request-form"' not in html
    html = client.get("/payouts?onboarding=nonsense").get_data(as_text=True)
    assert 'class="alert' not in html
