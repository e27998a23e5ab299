"""JSON auth API (DESIGN.md §7, §10): register, tokens, bearer auth, CSRF on cookie auth."""
from __future__ import annotations

import hashlib
import secrets

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.conftest import unique_email
from tests.helpers import assert_error

PASSWORD = "correct-horse-1"


# ---- helpers ----------------------------------------------------------------

def register(client, **overrides):
    """POST /api/auth/register with a valid body, `overrides` replacing (or, with
    the value `...`, removing) fields. Returns (response, body sent)."""
    body = {"email": unique_email("api"), "password": PASSWORD, "displayName": "Api User", "role": "fan"}
    for key, value in overrides.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return client.post("/api/auth/register", json=body), body


def users_total() -> int:
    return db.session.scalar(text("SELECT count(*) FROM users"))


def users_with_email(email: str) -> int:
    return db.session.scalar(text("SELECT count(*) FROM users WHERE lower(email) = lower(:e)"), {"e": email})


def purchases_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM purchases WHERE user_id = :u"), {"u": user_id})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}




# ---- register and token -----------------------------------------------------

def test_register_answers_201_with_user_and_token(client, ctx):
    resp, sent = register(client, displayName="Ada", role="creator")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"user", "token"}
    assert set(body["user"]) == {"id", "email", "displayName", "role"}
    assert isinstance(body["user"]["id"], int)
    assert body["user"]["email"] == sent["email"]
    assert body["user"]["displayName"] == "Ada"
    assert body["user"]["role"] == "creator"
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    assert users_with_email(sent["email"]) == 1


def test_register_without_role_makes_a_fan(client, ctx):
    resp, _ = register(client, role=...)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["user"]["role"] == "fan"


def test_register_normalises_email_to_lower_case(client, ctx):
    email = unique_email("MixedCase").replace("MixedCase", "MiXeD")
    resp, _ = register(client, email=f"  {email.upper()}  ")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["user"]["email"] == email.lower()


def test_token_endpoint_answers_200_with_a_token_for_correct_credentials(client, ctx):
    _, sent = register(client)
    resp = client.post("/api/auth/token", json={"email": sent["email"], "password": PASSWORD})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"token"} and isinstance(body["token"], str) and body["token"]


def test_token_endpoint_accepts_the_email_in_any_case(client, ctx):
    _, sent = register(client)
    resp = client.post("/api/auth/token", json={"email": sent["email"].upper(), "password": PASSWORD})
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_register_token_and_issued_token_both_work_as_bearer_on_wallet_me(client, ctx):
    resp, sent = register(client)
    register_token = resp.get_json()["token"]
    issued = client.post("/api/auth/token", json={"email": sent["email"], "password": PASSWORD}).get_json()["token"]
    assert issued != register_token
    for token in (register_token, issued):
        me = client.get("/api/wallet/me", headers=bearer(token))
        assert me.status_code == 200, me.get_data(as_text=True)
        assert me.get_json() == {"balance": 0, "earnings": 0}


def test_bearer_token_identifies_its_own_user(client, make_fan, api_headers):
    """Each token acts as its owner: two users see their own balances."""
    rich, poor = make_fan(balance=700), make_fan()
    assert client.get("/api/wallet/me", headers=api_headers(rich)).get_json()["balance"] == 700
    assert client.get("/api/wallet/me", headers=api_headers(poor)).get_json()["balance"] == 0


def test_bearer_auth_writes_nothing_to_the_session(client, make_fan, api_headers):
    """A bearer request does not log the browser in: the next request without it is 401."""
    fan = make_fan()
    assert client.get("/api/wallet/me", headers=api_headers(fan)).status_code == 200
    assert_error(client.get("/api/wallet/me"), 401, "unauthorized")
    assert client.get("/wallet").status_code == 302


def test_api_tokens_are_stored_only_as_sha256_hashes(client, ctx):
    resp, _ = register(client)
    user_id, raw = resp.get_json()["user"]["id"], resp.get_json()["token"]
    second = client.post("/api/auth/token", json={"email": resp.get_json()["user"]["email"], "password": PASSWORD})
    raws = {raw, second.get_json()["token"]}
    stored = db.session.execute(text("SELECT * FROM api_tokens WHERE user_id = :u"), {"u": user_id}).mappings().all()
    assert len(stored) == 2
    for row in stored:
        for value in row.values():
            assert not any(r in str(value) for r in raws), f"raw token stored in api_tokens: {row}"
    assert {row["token_hash"] for row in stored} == {hashlib.sha256(r.encode()).hexdigest() for r in raws}


def test_wrong_password_and_unknown_email_get_the_same_status_and_body(client, ctx):
    _, sent = register(client)
    wrong_password = client.post("/api/auth/token", json={"email": sent["email"], "password": "not-the-password"})
    unknown_email = client.post("/api/auth/token", json={"email": unique_email("nobody"), "password": PASSWORD})
    body = assert_error(wrong_password, 401, "invalid_credentials")
    assert unknown_email.status_code == wrong_password.status_code
    assert unknown_email.get_json() == body
    assert "token" not in body


@pytest.mark.parametrize("credentials", [
    {"email": 12345, "password": PASSWORD},
    {"email": ["a@example.com"], "password": PASSWORD},
    {"email": "a@example.com"},
    {"password": PASSWORD},
    {},
    {"email": "a@example.com", "password": "x" * 10_000},
    {"email": "a" * 5_000 + "@example.com", "password": PASSWORD},
])
def test_token_with_unusable_credentials_is_401_invalid_credentials(client, ctx, credentials):
    assert_error(client.post("/api/auth/token", json=credentials), 401, "invalid_credentials")


@pytest.mark.parametrize("field", ["email", "password"])
@pytest.mark.parametrize("bad", ["a\u0000b", "a\ud800b"], ids=["nul", "lone-surrogate"])
def test_token_with_a_nul_byte_or_lone_surrogate_is_400_invalid_text_not_500(client, ctx, field, bad):
    """Text no person types (and UTF-8 or PostgreSQL cannot take) is refused before any check runs."""
    body = {"email": "a@example.com", "password": PASSWORD}
    body[field] = bad + body[field]
    assert_error(client.post("/api/auth/token", json=body), 400, "invalid_text")


# ---- malformed bodies --------------------------------------------------------

MALFORMED = [
    pytest.param("this is not json", "application/json", id="not-json"),
    pytest.param('{"email": "a@example.com",', "application/json", id="truncated-json"),
    pytest.param('["a@example.com", "password"]', "application/json", id="json-array"),
    pytest.param('"just a string"', "application/json", id="json-string"),
    pytest.param("null", "application/json", id="json-null"),
    pytest.param("42", "application/json", id="json-number"),
    pytest.param("", "application/json", id="empty"),
    pytest.param('{"email": "a@example.com"}', "text/plain", id="json-as-text-plain"),
    pytest.param("email=a%40example.com&password=x", "application/x-www-form-urlencoded", id="form-encoded"),
    pytest.param(b"\xff\xfe\x00garbage", "application/json", id="binary"),
]


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/token"])
@pytest.mark.parametrize("data,content_type", MALFORMED)
def test_malformed_body_is_400_with_error_and_code(client, ctx, path, data, content_type):
    before = users_total()
    resp = client.post(path, data=data, content_type=content_type)
    assert_error(resp, 400)
    assert users_total() == before


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/token"])
def test_deeply_nested_json_is_400_not_500(client, ctx, path):
    resp = client.post(path, data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert_error(resp, 400)


# ---- register: every bad field is 422 and creates nothing ----------------------

BAD_FIELDS = [
    pytest.param("email", ..., id="email-missing"),
    pytest.param("email", None, id="email-null"),
    pytest.param("email", "", id="email-empty"),
    pytest.param("email", "   ", id="email-blank"),
    pytest.param("email", "not-an-email", id="email-no-at"),
    pytest.param("email", "a@b", id="email-no-tld"),
    pytest.param("email", "two@@example.com", id="email-double-at"),
    pytest.param("email", "a" * 288 + "@example.com", id="email-300-chars"),
    pytest.param("email", 12345, id="email-number"),
    pytest.param("email", ["a@example.com"], id="email-list"),
    pytest.param("email", {"address": "a@example.com"}, id="email-object"),
    pytest.param("password", ..., id="password-missing"),
    pytest.param("password", None, id="password-null"),
    pytest.param("password", "", id="password-empty"),
    pytest.param("password", "short", id="password-5-chars"),
    pytest.param("password", "7chars!", id="password-7-chars"),
    pytest.param("password", "x" * 129, id="password-129-chars"),
    pytest.param("password", "x" * 10_000, id="password-10000-chars"),
    pytest.param("password", 12345678, id="password-number"),
    pytest.param("password", ["correct-horse-1"], id="password-list"),
    pytest.param("password", True, id="password-bool"),
    pytest.param("displayName", ..., id="name-missing"),
    pytest.param("displayName", None, id="name-null"),
    pytest.param("displayName", "", id="name-empty"),
    pytest.param("displayName", "    ", id="name-blank"),
    pytest.param("displayName", "x" * 51, id="name-51-chars"),
    pytest.param("displayName", "x" * 1000, id="name-1000-chars"),
    pytest.param("displayName", "bell\u0007name", id="name-bell"),
    pytest.param("displayName", "\u001b[31mred", id="name-escape"),
    pytest.param("displayName", "del\u007fname", id="name-del"),
    pytest.param("displayName", ["Ada"], id="name-list"),
    pytest.param("displayName", 42, id="name-number"),
    pytest.param("displayName", {"first": "Ada"}, id="name-object"),
    pytest.param("role", "admin", id="role-admin"),
    pytest.param("role", "Creator", id="role-wrong-case"),
    pytest.param("role", "", id="role-empty"),
    pytest.param("role", None, id="role-null"),
    pytest.param("role", 1, id="role-number"),
    pytest.param("role", ["fan"], id="role-list"),
]


@pytest.mark.parametrize("field", ["email", "password", "displayName", "role"])
@pytest.mark.parametrize("bad", ["\u0000", "\ud800", "\udfff"],
                         ids=["nul", "lone-high-surrogate", "lone-low-surrogate"])
def test_register_with_a_nul_byte_or_lone_surrogate_in_any_field_is_400_invalid_text_and_creates_no_user(
        client, ctx, field, bad):
    before = users_total()
    resp, sent = register(client, **{field: "ok" + bad + "text@example.com"})
    body = assert_error(resp, 400, "invalid_text")
    assert "token" not in body and "user" not in body
    assert users_total() == before


def test_a_lone_surrogate_in_a_json_key_is_400_invalid_text(client, ctx):
    before = users_total()
    resp = client.post("/api/auth/register", data='{"email": "k@example.com", "password": "correct-horse-1", '
                       '"displayName": "Key", "\\ud800": 1}', content_type="application/json")
    assert_error(resp, 400, "invalid_text")
    assert users_total() == before


@pytest.mark.parametrize("field,value", BAD_FIELDS)
def test_register_rejects_a_bad_field_with_422_naming_it_and_creates_no_user(client, ctx, field, value):
    before = users_total()
    resp, sent = register(client, **{field: value})
    body = assert_error(resp, 422, "invalid_value")
    assert body["field"] == field
    assert "token" not in body and "user" not in body
    assert users_total() == before
    if isinstance(sent.get("email"), str) and "@" in sent["email"] and field != "email":
        assert users_with_email(sent["email"]) == 0


def test_register_with_several_bad_fields_lists_them_all(client, ctx):
    before = users_total()
    resp, _ = register(client, email="nope", password="x", displayName="", role="admin")
    body = assert_error(resp, 422, "invalid_value")
    assert body["field"] in {"email", "password", "displayName", "role"}
    assert set(body["errors"]) == {"email", "password", "displayName", "role"}
    assert users_total() == before


@pytest.mark.parametrize("name", ["x" * 50, "Zoë 🎉", "  padded  "])
def test_register_accepts_display_names_up_to_50_characters(client, ctx, name):
    resp, _ = register(client, displayName=name)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["user"]["displayName"] == name.strip()


def test_register_accepts_passwords_of_8_and_128_characters(client, ctx):
    for password in ("x" * 8, "y" * 128):
        resp, sent = register(client, password=password)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        login = client.post("/api/auth/token", json={"email": sent["email"], "password": password})
        assert login.status_code == 200


def test_duplicate_email_in_another_case_is_409_and_creates_nothing(client, ctx):
    email = unique_email("dupe")
    first, _ = register(client, email=email)
    assert first.status_code == 201
    before = users_total()
    again, _ = register(client, email=email.upper(), displayName="Someone Else", password="another-pass-9")
    body = assert_error(again, 409, "email_taken")
    assert body["field"] == "email"
    assert users_total() == before
    assert users_with_email(email) == 1
    # The original account keeps its password.
    assert client.post("/api/auth/token", json={"email": email, "password": PASSWORD}).status_code == 200
    assert client.post("/api/auth/token", json={"email": email, "password": "another-pass-9"}).status_code == 401


# ---- hostile display names ------------------------------------------------------

def test_hostile_display_name_is_stored_raw_and_rendered_escaped(client, ctx):
    hostile = "<script>alert(1)</script>"
    resp, sent = register(client, displayName=hostile)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["user"]["displayName"] == hostile
    stored = db.session.scalar(text("SELECT display_name FROM users WHERE email = :e"), {"e": sent["email"]})
    assert stored == hostile

    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    login = client.post("/login", data={"email": sent["email"], "password": PASSWORD, "csrf_token": token})
    assert login.status_code == 303
    for path in ("/account", "/wallet"):
        html = client.get(path).get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert hostile not in html, path


# ---- credentials and CSRF on the API ----------------------------------------------

@pytest.mark.parametrize("method,path", [("GET", "/api/wallet/me"), ("POST", "/api/tokens/purchase")])
def test_no_credentials_is_401_never_a_csrf_error(client, ctx, method, path):
    resp = client.open(path, method=method, json={"amountTokens": 500}, headers={"Idempotency-Key": "k"})
    assert_error(resp, 401, "unauthorized")


def test_anonymous_browser_with_a_session_cookie_gets_401_not_csrf_error(client, ctx):
    """A visitor who has a session (but is not logged in) still gets 401 from the API."""
    client.get("/signup")  # sets a session cookie holding a CSRF secret
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 500}, headers={"Idempotency-Key": "k"})
    assert_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("header", [
    "Bearer pm_" + "x" * 43,
    "Bearer " + secrets.token_urlsafe(32),
    "Bearer ",
    "Bearer",
    "bearer nonsense",
    "Basic dXNlcjpwYXNz",
    "Token pm_abc",
    "Bearer " + "x" * 5000,
])
@pytest.mark.parametrize("method,path", [("GET", "/api/wallet/me"), ("POST", "/api/tokens/purchase")])
def test_bad_bearer_token_is_401_invalid_token(client, ctx, header, method, path):
    resp = client.open(path, method=method, json={"amountTokens": 500},
                       headers={"Authorization": header, "Idempotency-Key": "k"})
    assert_error(resp, 401, "invalid_token")


def test_a_bad_bearer_token_is_refused_even_with_a_logged_in_cookie(client, make_fan, login):
    """A client that sends a token means it: a wrong one is 401, not a fallback to the cookie."""
    fan = make_fan()
    login(fan)
    resp = client.get("/api/wallet/me", headers={"Authorization": "Bearer pm_wrong"})
    assert_error(resp, 401, "invalid_token")


def test_cookie_purchase_without_csrf_header_is_400_csrf_failed_and_buys_nothing(client, make_fan, login):
    fan = make_fan()
    login(fan)
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 500}, headers={"Idempotency-Key": "no-csrf"})
    assert_error(resp, 400, "csrf_failed")
    assert client.get("/api/wallet/me").get_json() == {"balance": 0, "earnings": 0}
    assert purchases_of(fan.id) == 0


def test_cookie_purchase_with_a_wrong_csrf_header_is_400_csrf_failed(client, make_fan, login):
    fan = make_fan()
    login(fan)
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 500},
                       headers={"Idempotency-Key": "bad-csrf", "X-CSRFToken": "forged"})
    assert_error(resp, 400, "csrf_failed")
    assert purchases_of(fan.id) == 0


def test_cookie_purchase_with_csrf_header_is_201(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 500},
                       headers={"Idempotency-Key": "with-csrf", "X-CSRFToken": csrf})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["newBalance"] == 500
    assert client.get("/api/wallet/me").get_json()["balance"] == 500
    assert purchases_of(fan.id) == 1


def test_bearer_purchase_needs_no_csrf_token(client, make_fan, api_headers):
    fan = make_fan()
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 500},
                       headers=api_headers(fan, **{"Idempotency-Key": "bearer"}))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert purchases_of(fan.id) == 1


@pytest.mark.parametrize("name", ["Line\nbreak", "Tab\there", "evil\u202eeman", "iso\u2066late"])
def test_display_name_refuses_line_breaks_tabs_and_bidi_overrides(client, ctx, name):
    """Names show on one line, exactly as typed: no breaks, no right-to-left override tricks."""
    resp = client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD,
                                                   "displayName": name, "role": "fan"})
    assert resp.status_code == 422 and resp.get_json()["field"] == "displayName"
