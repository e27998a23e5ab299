"""HTML sign-up, log-in, log-out and account pages (DESIGN.md §8, §10)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.conftest import csrf_from, unique_email

PASSWORD = "correct-horse-1"
BAD_CREDENTIALS = "Email or password is incorrect."


# ---- helpers ----------------------------------------------------------------

def signup_form(csrf: str, **overrides) -> dict:
    data = {"displayName": "Page User", "email": unique_email("page"), "password": PASSWORD, "role": "fan",
            "csrf_token": csrf}
    data.update(overrides)
    return data


def users_total() -> int:
    return db.session.scalar(text("SELECT count(*) FROM users"))


def users_with_email(email: str) -> int:
    return db.session.scalar(text("SELECT count(*) FROM users WHERE lower(email) = lower(:e)"), {"e": email})


def role_of(email: str) -> str | None:
    return db.session.scalar(text("SELECT role FROM users WHERE lower(email) = lower(:e)"), {"e": email})


def account_ids(email: str, kind: str) -> list[int]:
    return list(db.session.scalars(text(
        "SELECT a.id FROM ledger_accounts a JOIN users u ON u.id = a.user_id "
        "WHERE lower(u.email) = lower(:e) AND a.kind = :k"), {"e": email, "k": kind}))


def path_of(location: str) -> str:
    """The same-site path of a Location header (the test client may add scheme and host)."""
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost"), f"redirect leaves the site: {location!r}"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def is_logged_in(client) -> bool:
    return client.get("/api/wallet/me").status_code == 200


def field_error(html: str, field_id: str) -> str | None:
    """The inline error rendered right after the field `field_id`, if any."""
    m = re.search(rf'<p class="field-error" id="{re.escape(field_id)}-error" role="alert">([^<]*)</p>', html)
    return m.group(1) if m else None


# ---- sign-up ----------------------------------------------------------------

def test_signup_page_has_labelled_fields_and_a_csrf_token(client):
    html = client.get("/signup").get_data(as_text=True)
    for label in ("Display name", "Email", "Password"):
        assert f">{label}</label>" in html
    assert 'name="csrf_token"' in html
    assert ">Sign up" in html


def test_signup_success_redirects_303_to_wallet_and_logs_in(client, ctx):
    data = signup_form(csrf_from(client, "/signup"), displayName="Newbie")
    resp = client.post("/signup", data=data)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert path_of(resp.headers["Location"]) == "/wallet"
    assert users_with_email(data["email"]) == 1
    assert is_logged_in(client)
    wallet = client.get("/wallet")
    assert wallet.status_code == 200
    assert "Newbie" in wallet.get_data(as_text=True)


def test_signup_as_creator_opens_an_earnings_account(client, ctx):
    data = signup_form(csrf_from(client, "/signup"), role="creator")
    assert client.post("/signup", data=data).status_code == 303
    assert role_of(data["email"]) == "creator"
    assert len(account_ids(data["email"], "earnings")) == 1
    assert client.get("/api/wallet/me").get_json() == {"balance": 0, "earnings": 0}


@pytest.mark.parametrize("field,value,field_id,message", [
    ("password", "short", "password", "Password must be at least 8 characters."),
    ("password", "", "password", "Password is required."),
    ("email", "not-an-email", "email", "Enter a valid email address, like name@example.com."),
    ("email", "", "email", "Email is required."),
    ("displayName", "", "displayName", "Display name is required."),
    ("displayName", "x" * 51, "displayName", "Display name can be at most 50 characters."),
    ("displayName", "bad\x07name", "displayName", "Display name contains characters that are not allowed."),
])
def test_signup_bad_input_rerenders_the_form_422_with_the_error_at_the_field(client, ctx, field, value,
                                                                             field_id, message):
    before = users_total()
    data = signup_form(csrf_from(client, "/signup"), **{field: value})
    resp = client.post("/signup", data=data)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "<html" in html and 'id="signup-form"' in html
    assert field_error(html, field_id) == message
    assert f'id="{field_id}"' in html and 'aria-invalid="true"' in html
    assert users_total() == before
    assert not is_logged_in(client)


def test_signup_bad_role_shows_the_error_in_the_role_fieldset(client, ctx):
    before = users_total()
    resp = client.post("/signup", data=signup_form(csrf_from(client, "/signup"), role="admin"))
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(r'<fieldset class="field role-choice has-error">.*Role must be one of: fan, creator\.'
                     r'.*</fieldset>', html, re.S)
    assert users_total() == before


def test_signup_rerender_keeps_the_typed_values_but_not_the_password(client, ctx):
    data = signup_form(csrf_from(client, "/signup"), password="short", displayName="Keep Me")
    html = client.post("/signup", data=data).get_data(as_text=True)
    assert 'value="Keep Me"' in html
    assert f'value="{data["email"]}"' in html
    assert 'value="short"' not in html


def test_signup_with_a_taken_email_is_409_with_the_error_at_the_email_field(client, make_fan):
    fan = make_fan()
    before = users_total()
    resp = client.post("/signup", data=signup_form(csrf_from(client, "/signup"), email=fan.email.upper()))
    assert resp.status_code == 409
    assert field_error(resp.get_data(as_text=True), "email") == \
        "An account with this email already exists. Log in instead."
    assert users_total() == before
    assert not is_logged_in(client)


def test_signup_htmx_bad_input_returns_only_the_form_fragment_with_inline_error(client, ctx):
    before = users_total()
    data = signup_form(csrf_from(client, "/signup"), password="short")
    resp = client.post("/signup", data=data, headers={"HX-Request": "true"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True).strip()
    assert html.startswith('<form id="signup-form"') and html.endswith("</form>")
    assert "<html" not in html and "<body" not in html
    assert field_error(html, "password") == "Password must be at least 8 characters."
    assert users_total() == before


def test_signup_htmx_success_answers_hx_redirect_to_wallet(client, ctx):
    data = signup_form(csrf_from(client, "/signup"))
    resp = client.post("/signup", data=data, headers={"HX-Request": "true"})
    assert resp.status_code == 200
    assert resp.headers["HX-Redirect"] == "/wallet"
    assert users_with_email(data["email"]) == 1
    assert is_logged_in(client)


def test_signup_stores_a_hostile_display_name_raw_and_shows_it_escaped(client, ctx):
    hostile = '<img src=x onerror="alert(1)">'
    data = signup_form(csrf_from(client, "/signup"), displayName=hostile)
    assert client.post("/signup", data=data).status_code == 303
    assert db.session.scalar(text("SELECT display_name FROM users WHERE email = :e"),
                             {"e": data["email"]}) == hostile
    html = client.get("/account").get_data(as_text=True)
    assert hostile not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


# ---- log in / log out --------------------------------------------------------

def test_login_success_redirects_303_to_wallet(client, make_fan):
    fan = make_fan()
    resp = client.post("/login", data={"email": fan.email, "password": fan.test_password,
                                       "csrf_token": csrf_from(client, "/login")})
    assert resp.status_code == 303
    assert path_of(resp.headers["Location"]) == "/wallet"
    assert is_logged_in(client)


def test_login_wrong_password_and_unknown_email_show_the_same_message(client, make_fan):
    fan = make_fan()
    csrf = csrf_from(client, "/login")
    wrong = client.post("/login", data={"email": fan.email, "password": "wrong-password", "csrf_token": csrf})
    unknown = client.post("/login", data={"email": unique_email("ghost"), "password": fan.test_password,
                                          "csrf_token": csrf})
    assert wrong.status_code == unknown.status_code
    assert 400 <= wrong.status_code < 500
    for resp in (wrong, unknown):
        html = resp.get_data(as_text=True)
        assert BAD_CREDENTIALS in html
        assert 'id="login-form"' in html
    assert not is_logged_in(client)


def test_refused_credentials_mark_both_fields_invalid_and_describe_them_by_the_one_error(client, make_fan):
    """The error says not which field is wrong, yet each field points at it (aria-describedby),
    so a screen reader reads it from either; a fresh form marks nothing invalid."""
    fan = make_fan()
    csrf = csrf_from(client, "/login")
    assert 'aria-invalid' not in client.get("/login").get_data(as_text=True)
    html = client.post("/login", data={"email": fan.email, "password": "wrong-password", "csrf_token": csrf}
                       ).get_data(as_text=True)
    assert re.search(r'<div class="alert error" role="alert" id="login-error">' + re.escape(BAD_CREDENTIALS), html)
    for field_id in ("email", "password"):
        tag = re.search(rf'<input[^>]* id="{field_id}"[^>]*>', html).group(0)
        assert 'aria-describedby="login-error"' in tag and 'aria-invalid="true"' in tag, tag


def test_login_htmx_failure_returns_only_the_form_with_the_message(client, make_fan):
    fan = make_fan()
    resp = client.post("/login", data={"email": fan.email, "password": "nope-nope",
                                       "csrf_token": csrf_from(client, "/login")}, headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True).strip()
    assert html.startswith('<form id="login-form"') and "<html" not in html
    assert BAD_CREDENTIALS in html


def test_login_htmx_success_answers_hx_redirect(client, make_fan):
    fan = make_fan()
    resp = client.post("/login", data={"email": fan.email, "password": fan.test_password,
                                       "csrf_token": csrf_from(client, "/login")}, headers={"HX-Request": "true"})
    assert resp.status_code == 200 and resp.headers["HX-Redirect"] == "/wallet"
    assert is_logged_in(client)


def test_login_with_a_nul_byte_in_the_email_is_400_invalid_text_not_500(client, ctx):
    """No browser form sends a NUL byte: the request is refused whole, before the login runs."""
    resp = client.post("/login", data={"email": "a\x00b@example.com", "password": PASSWORD,
                                       "csrf_token": csrf_from(client, "/login")})
    assert resp.status_code == 400
    assert "NUL byte" in resp.get_data(as_text=True)
    assert not is_logged_in(client)


def test_logout_logs_out_and_redirects_to_discover(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    resp = client.post("/logout", data={"csrf_token": csrf})
    assert resp.status_code == 303 and path_of(resp.headers["Location"]) == "/"
    assert not is_logged_in(client)
    assert client.get("/wallet").status_code == 302


def test_logout_by_get_is_not_allowed(client, make_fan, login):
    fan = make_fan()
    login(fan)
    assert client.get("/logout").status_code == 405
    assert is_logged_in(client)


# ---- CSRF on pages -------------------------------------------------------------

def test_signup_without_csrf_token_is_400_and_creates_nothing(client, ctx):
    client.get("/signup")
    before = users_total()
    data = signup_form("")
    del data["csrf_token"]
    resp = client.post("/signup", data=data)
    assert resp.status_code == 400
    assert "Reload the page" in resp.get_data(as_text=True)
    assert users_total() == before
    assert users_with_email(data["email"]) == 0
    assert not is_logged_in(client)


def test_signup_with_a_forged_csrf_token_is_400(client, ctx):
    client.get("/signup")
    data = signup_form("forged-token")
    assert client.post("/signup", data=data).status_code == 400
    assert users_with_email(data["email"]) == 0


def test_login_without_csrf_token_is_400_and_does_not_log_in(client, make_fan):
    fan = make_fan()
    client.get("/login")
    resp = client.post("/login", data={"email": fan.email, "password": fan.test_password})
    assert resp.status_code == 400
    assert not is_logged_in(client)


def test_logout_without_csrf_token_is_400_and_stays_logged_in(client, make_fan, login):
    fan = make_fan()
    login(fan)
    assert client.post("/logout").status_code == 400
    assert is_logged_in(client)


def test_become_creator_without_csrf_token_is_400_and_changes_nothing(client, make_fan, login):
    fan = make_fan()
    login(fan)
    assert client.post("/account/become-creator").status_code == 400
    assert role_of(fan.email) == "fan"
    assert account_ids(fan.email, "earnings") == []


def test_a_csrf_token_from_another_session_is_refused(client, new_client, make_fan, login):
    fan = make_fan()
    login(fan)
    stranger_token = csrf_from(new_client(), "/signup")
    assert client.post("/logout", data={"csrf_token": stranger_token}).status_code == 400
    assert is_logged_in(client)


# ---- `next` ---------------------------------------------------------------------

OFFSITE = ["//evil.com", "https://evil.com", "http://evil.com/wallet", "/\\evil.com", "\\\\evil.com",
           "javascript:alert(1)", "/\t/evil.com", "/\n/evil.com", "/\r\n/evil.com", "//evil.com/%2F..",
           " //evil.com", "evil.com"]


@pytest.mark.parametrize("target", OFFSITE)
def test_login_next_pointing_off_site_goes_to_wallet(client, make_fan, target):
    fan = make_fan()
    resp = client.post("/login", query_string={"next": target},
                       data={"email": fan.email, "password": fan.test_password,
                             "csrf_token": csrf_from(client, "/login")})
    assert resp.status_code == 303
    assert path_of(resp.headers["Location"]) == "/wallet"


def test_a_creator_lands_on_their_dashboard_after_login_and_signup(client, new_client, make_creator, ctx):
    """A creator's home is their earnings, not a wallet to buy tokens with; a `next` still wins."""
    creator = make_creator()
    resp = client.post("/login", data={"email": creator.email, "password": creator.test_password,
                                       "csrf_token": csrf_from(client, "/login")})
    assert resp.status_code == 303 and path_of(resp.headers["Location"]) == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    other = new_client()
    resp = other.post("/signup", data=signup_form(csrf_from(other, "/signup"), role="creator"))
    assert resp.status_code == 303 and path_of(resp.headers["Location"]) == "/dashboard"
    again = new_client()
    resp = again.post("/login", query_string={"next": "/creator/streams"},
                      data={"email": creator.email, "password": creator.test_password,
                            "csrf_token": csrf_from(again, "/login")})
    assert path_of(resp.headers["Location"]) == "/creator/streams"


@pytest.mark.parametrize("target", OFFSITE)
def test_signup_next_pointing_off_site_goes_to_wallet(client, ctx, target):
    data = signup_form(csrf_from(client, "/signup"), next=target)
    resp = client.post("/signup", data=data)
    assert resp.status_code == 303
    assert path_of(resp.headers["Location"]) == "/wallet"


def test_login_next_same_site_path_is_followed(client, make_fan):
    fan = make_fan()
    resp = client.post("/login", data={"email": fan.email, "password": fan.test_password, "next": "/account",
                                       "csrf_token": csrf_from(client, "/login")})
    assert resp.status_code == 303 and path_of(resp.headers["Location"]) == "/account"


def test_login_required_page_sends_to_login_and_back(client, make_fan):
    fan = make_fan()
    resp = client.get("/account")
    assert resp.status_code == 302
    assert path_of(resp.headers["Location"]) == "/login?next=%2Faccount"
    html = client.get("/login?next=%2Faccount").get_data(as_text=True)
    assert '<input type="hidden" name="next" value="/account">' in html
    back = client.post("/login", data={"email": fan.email, "password": fan.test_password, "next": "/account",
                                       "csrf_token": csrf_from(client, "/login")})
    assert path_of(back.headers["Location"]) == "/account"


def test_next_survives_a_failed_login_attempt(client, make_fan):
    """After a wrong password the re-rendered form still carries `next`, so the retry lands there."""
    fan = make_fan()
    csrf = csrf_from(client, "/login?next=%2Faccount")
    failed = client.post("/login", data={"email": fan.email, "password": "wrong-password", "next": "/account",
                                         "csrf_token": csrf})
    assert BAD_CREDENTIALS in failed.get_data(as_text=True)
    assert '<input type="hidden" name="next" value="/account">' in failed.get_data(as_text=True)


def test_next_value_is_escaped_in_the_form(client):
    html = client.get("/login", query_string={"next": '/x"><script>alert(1)</script>'}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert 'value="/x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html


# ---- account: becoming a creator --------------------------------------------------

def test_become_creator_from_account_opens_an_earnings_account(client, make_fan, login):
    fan = make_fan(balance=500)
    csrf = login(fan)
    html = client.get("/account").get_data(as_text=True)
    assert "Become a creator" in html
    resp = client.post("/account/become-creator", data={"csrf_token": csrf})
    assert resp.status_code == 303 and path_of(resp.headers["Location"]) == "/account"
    assert role_of(fan.email) == "creator"
    assert len(account_ids(fan.email, "earnings")) == 1
    assert client.get("/api/wallet/me").get_json() == {"balance": 500, "earnings": 0}
    html = client.get("/account").get_data(as_text=True)
    assert "<dd>Creator</dd>" in html and "Become a creator" not in html
    # Doing it again changes nothing and opens no second account.
    assert client.post("/account/become-creator", data={"csrf_token": csrf}).status_code == 303
    assert len(account_ids(fan.email, "earnings")) == 1


def test_account_requires_login(client):
    assert client.get("/account").status_code == 302
    assert client.post("/account/become-creator").status_code in (302, 400)
