"""POST /api/tokens/purchase and GET /api/wallet/me (DESIGN.md §4, §5, §7)."""
from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.helpers import assert_error


# ---- helpers ----------------------------------------------------------------

@pytest.fixture()
def fan_api(make_fan, api_headers):
    """(fan, headers) for a fan with an empty wallet and a bearer token."""
    fan = make_fan()
    return fan, api_headers(fan)


def buy(client, headers, amount=1000, key=None, **kw):
    key = key if key is not None else str(uuid.uuid4())
    return client.post("/api/tokens/purchase", json={"amountTokens": amount},
                       headers={**headers, "Idempotency-Key": key}, **kw)


def balance(client, headers) -> int:
    resp = client.get("/api/wallet/me", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["balance"]


def purchases_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM purchases WHERE user_id = :u"), {"u": user_id})


def wallet_entries_of(user_id: int) -> int:
    return db.session.scalar(text(
        "SELECT count(*) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE a.user_id = :u AND a.kind = 'wallet'"), {"u": user_id})




# ---- happy path ---------------------------------------------------------------

def test_purchase_answers_201_with_new_balance_and_the_purchase(client, fan_api):
    fan, headers = fan_api
    resp = buy(client, headers, 1000)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"newBalance", "purchase"}
    assert body["newBalance"] == 1000
    purchase = body["purchase"]
    assert purchase["amountTokens"] == 1000
    assert purchase["amountCents"] == 1000  # demo price: one cent per token, integer cents
    assert purchase["provider"] == "demo" and purchase["status"] == "completed"
    assert isinstance(purchase["id"], int) and purchase["createdAt"]
    assert purchases_of(fan.id) == 1


@pytest.mark.parametrize("amount", [1, 500, 99_999, 100_000])
def test_purchase_accepts_every_amount_from_1_to_100000(client, fan_api, amount):
    fan, headers = fan_api
    resp = buy(client, headers, amount)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["newBalance"] == amount
    assert balance(client, headers) == amount


def test_wallet_me_reflects_every_purchase(client, fan_api):
    fan, headers = fan_api
    assert client.get("/api/wallet/me", headers=headers).get_json() == {"balance": 0, "earnings": 0}
    assert buy(client, headers, 500).get_json()["newBalance"] == 500
    assert buy(client, headers, 2500).get_json()["newBalance"] == 3000
    assert buy(client, headers, 1).get_json()["newBalance"] == 3001
    assert client.get("/api/wallet/me", headers=headers).get_json() == {"balance": 3001, "earnings": 0}
    assert purchases_of(fan.id) == 3


def test_wallet_me_reports_creator_earnings_separately(client, make_creator, api_headers):
    creator = make_creator(balance=250)
    assert client.get("/api/wallet/me", headers=api_headers(creator)).get_json() == {"balance": 250, "earnings": 0}


# ---- bad amounts ----------------------------------------------------------------

BAD_AMOUNTS = [
    pytest.param({"amountTokens": 0}, id="zero"),
    pytest.param({"amountTokens": -1}, id="negative"),
    pytest.param({"amountTokens": -100_000}, id="very-negative"),
    pytest.param({"amountTokens": 1.5}, id="fraction"),
    pytest.param({"amountTokens": 1000.0}, id="float-whole"),
    pytest.param({"amountTokens": 1e3}, id="exponent"),
    pytest.param({"amountTokens": "abc"}, id="letters"),
    pytest.param({"amountTokens": "1000"}, id="numeric-string"),
    pytest.param({"amountTokens": "1,000"}, id="formatted-string"),
    pytest.param({"amountTokens": ""}, id="empty-string"),
    pytest.param({"amountTokens": True}, id="true"),
    pytest.param({"amountTokens": False}, id="false"),
    pytest.param({"amountTokens": None}, id="null"),
    pytest.param({}, id="missing"),
    pytest.param({"amount": 1000}, id="wrong-name"),
    pytest.param({"amountTokens": 10 ** 12}, id="trillion"),
    pytest.param({"amountTokens": 2 ** 63}, id="beyond-bigint"),
    pytest.param({"amountTokens": 100_001}, id="max-plus-one"),
    pytest.param({"amountTokens": "9" * 10_000}, id="10000-char-string"),
    pytest.param({"amountTokens": {"value": 1000}}, id="object"),
    pytest.param({"amountTokens": {"a": {"b": {"c": [1000]}}}}, id="nested-object"),
    pytest.param({"amountTokens": [1000]}, id="list"),
]


@pytest.mark.parametrize("body", BAD_AMOUNTS)
def test_bad_amount_is_422_on_amountTokens_and_buys_nothing(client, fan_api, body):
    fan, headers = fan_api
    resp = client.post("/api/tokens/purchase", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
    err = assert_error(resp, 422, "invalid_value")
    assert err["field"] == "amountTokens"
    assert balance(client, headers) == 0
    assert purchases_of(fan.id) == 0
    assert wallet_entries_of(fan.id) == 0


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1E400", "9" * 400])
def test_non_finite_or_huge_json_numbers_are_refused_without_buying(client, fan_api, raw):
    fan, headers = fan_api
    resp = client.post("/api/tokens/purchase", data='{"amountTokens": %s}' % raw, content_type="application/json",
                       headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
    assert resp.status_code in (400, 422), resp.get_data(as_text=True)
    assert_error(resp, resp.status_code)
    assert purchases_of(fan.id) == 0


def test_a_refused_amount_does_not_burn_the_idempotency_key(client, fan_api):
    """A 422 leaves no claim behind: the same key then works with a valid amount."""
    fan, headers = fan_api
    assert buy(client, headers, 0, key="retry-me").status_code == 422
    resp = buy(client, headers, 500, key="retry-me")
    assert resp.status_code == 201 and resp.get_json()["newBalance"] == 500


# ---- idempotency ------------------------------------------------------------------

def test_missing_idempotency_key_is_400_and_buys_nothing(client, fan_api):
    fan, headers = fan_api
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 1000}, headers=headers)
    assert_error(resp, 400, "idempotency_key_required")
    assert purchases_of(fan.id) == 0 and balance(client, headers) == 0


@pytest.mark.parametrize("key,code", [
    ("", "idempotency_key_required"),
    ("   ", "idempotency_key_required"),
    ("k" * 256, "invalid_idempotency_key"),
    ("k" * 10_000, "invalid_idempotency_key"),
])
def test_blank_or_overlong_idempotency_key_is_400_and_buys_nothing(client, fan_api, key, code):
    fan, headers = fan_api
    assert_error(buy(client, headers, 1000, key=key), 400, code)
    assert purchases_of(fan.id) == 0 and balance(client, headers) == 0


def test_idempotency_key_of_255_characters_is_accepted(client, fan_api):
    fan, headers = fan_api
    assert buy(client, headers, 1000, key="k" * 255).status_code == 201


def test_replay_with_same_key_and_amount_returns_the_first_answer_and_credits_once(client, fan_api):
    fan, headers = fan_api
    first = buy(client, headers, 1000, key="replay-1")
    assert first.status_code == 201
    for _ in range(3):
        again = buy(client, headers, 1000, key="replay-1")
        assert again.status_code == first.status_code
        assert again.get_json() == first.get_json()
    assert balance(client, headers) == 1000
    assert purchases_of(fan.id) == 1
    assert wallet_entries_of(fan.id) == 1


def test_replay_after_a_later_purchase_still_returns_the_first_balance(client, fan_api):
    fan, headers = fan_api
    first = buy(client, headers, 1000, key="first").get_json()
    assert buy(client, headers, 500, key="second").get_json()["newBalance"] == 1500
    assert buy(client, headers, 1000, key="first").get_json() == first
    assert balance(client, headers) == 1500


def test_same_key_with_a_different_amount_is_409_and_moves_nothing(client, fan_api):
    fan, headers = fan_api
    assert buy(client, headers, 1000, key="conflict").status_code == 201
    assert_error(buy(client, headers, 2500, key="conflict"), 409, "idempotency_key_reused")
    assert balance(client, headers) == 1000
    assert purchases_of(fan.id) == 1


def test_idempotency_keys_are_per_user(client, make_fan, api_headers):
    """Two users choosing the same key each get their own purchase."""
    a, b = make_fan(), make_fan()
    ha, hb = api_headers(a), api_headers(b)
    ra, rb = buy(client, ha, 500, key="shared-key"), buy(client, hb, 2500, key="shared-key")
    assert ra.status_code == rb.status_code == 201
    assert ra.get_json()["purchase"]["id"] != rb.get_json()["purchase"]["id"]
    assert balance(client, ha) == 500 and balance(client, hb) == 2500


# ---- size limits, methods, never a 500 ------------------------------------------------

def test_body_larger_than_64kb_is_413_json_and_buys_nothing(client, fan_api):
    fan, headers = fan_api
    body = json.dumps({"amountTokens": 1000, "padding": "x" * (65 * 1024)})
    resp = client.post("/api/tokens/purchase", data=body, content_type="application/json",
                       headers={**headers, "Idempotency-Key": "big"})
    assert_error(resp, 413, "payload_too_large")
    assert resp.mimetype == "application/json"
    assert purchases_of(fan.id) == 0


def test_body_larger_than_64kb_with_cookie_auth_is_413_json(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    body = json.dumps({"amountTokens": 1000, "padding": "x" * (65 * 1024)})
    resp = client.post("/api/tokens/purchase", data=body, content_type="application/json",
                       headers={"Idempotency-Key": "big", "X-CSRFToken": csrf})
    assert_error(resp, 413, "payload_too_large")
    assert purchases_of(fan.id) == 0


def test_wrong_method_is_405_json(client, fan_api):
    _, headers = fan_api
    assert_error(client.get("/api/tokens/purchase", headers=headers), 405, "method_not_allowed")
    assert_error(client.post("/api/wallet/me", headers=headers), 405, "method_not_allowed")


WEIRD_REQUESTS = [
    pytest.param(dict(data="not json", content_type="application/json"), id="not-json"),
    pytest.param(dict(data="[1000]", content_type="application/json"), id="array"),
    pytest.param(dict(data="", content_type="application/json"), id="empty"),
    pytest.param(dict(data="amountTokens=1000", content_type="application/x-www-form-urlencoded"), id="form"),
    pytest.param(dict(data='{"amountTokens": 1000}', content_type="text/plain"), id="text-plain"),
    pytest.param(dict(data=b"\x00\xff" * 100, content_type="application/json"), id="binary"),
    pytest.param(dict(data='{"amountTokens": 1000, "amountTokens": 5}', content_type="application/json"),
                 id="duplicate-keys"),
    pytest.param(dict(data='{"amountTokens": "\\u0000"}', content_type="application/json"), id="nul-string"),
    pytest.param(dict(data='{"amountTokens": 1000}', content_type="application/json",
                      headers={"Idempotency-Key": "caf\u00e9"}), id="non-ascii-key"),
    pytest.param(dict(data='{"amountTokens": 1000}', content_type="application/json",
                      headers={"Idempotency-Key": "tab\there"}), id="tab-in-key"),
]


@pytest.mark.parametrize("request_kwargs", WEIRD_REQUESTS)
def test_odd_requests_get_a_json_4xx_never_a_500(client, fan_api, request_kwargs):
    fan, headers = fan_api
    kwargs = dict(request_kwargs)
    kwargs["headers"] = {**headers, "Idempotency-Key": str(uuid.uuid4()), **kwargs.get("headers", {})}
    resp = client.post("/api/tokens/purchase", **kwargs)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code >= 400:
        assert_error(resp, resp.status_code)
        assert purchases_of(fan.id) == 0


def test_deeply_nested_json_body_is_400_not_500(client, fan_api):
    fan, headers = fan_api
    resp = client.post("/api/tokens/purchase", data='{"amountTokens": ' + "[" * 5000 + "]" * 5000 + "}",
                       content_type="application/json", headers={**headers, "Idempotency-Key": "deep"})
    assert_error(resp, 400)
    assert purchases_of(fan.id) == 0
