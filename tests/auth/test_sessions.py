"""Browser sessions end for real (app/auth/sessions.py): logout, a password
change and "log out everywhere" make every earlier copy of a session cookie
worthless, on every instance; idle sessions expire; CSRF tokens have a lifetime."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from sqlalchemy import text

from app.extensions import db
from tests.conftest import csrf_from, fresh_client
from tests.helpers import assert_error

NEW_PASSWORD = "a-brand-new-pass-9"


def cookie_of(client) -> str:
    return client.get_cookie("session").value


def browser_with(app, cookie: str):
    """Another browser that presents a copy of `cookie` (what a thief would do)."""
    other = fresh_client(app)
    other.set_cookie("session", cookie)
    return other


def csrf_in(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def balance(user_id: int) -> int:
    return db.session.scalar(text("SELECT balance FROM ledger_accounts WHERE user_id = :u AND kind = 'wallet'"),
                             {"u": user_id})


def sessions_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM user_sessions WHERE user_id = :u"), {"u": user_id})


def last_seen_ago(user_id: int, interval: str) -> None:
    """Pretend the user's sessions were last used `interval` ago (e.g. "31 days")."""
    db.session.execute(text("UPDATE user_sessions SET last_seen_at = now() - CAST(:i AS interval) "
                            "WHERE user_id = :u"), {"u": user_id, "i": interval})
    db.session.commit()


def tokens_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM api_tokens WHERE user_id = :u"), {"u": user_id})


# ---- logout -------------------------------------------------------------------------

def test_a_cookie_copied_before_logout_is_refused_afterwards_and_cannot_tip(app, client, make_fan, make_creator,
                                                                            login):
    fan, creator = make_fan(balance=500), make_creator()
    csrf = login(fan)
    stolen = cookie_of(client)
    thief = browser_with(app, stolen)
    assert thief.get("/api/wallet/me").status_code == 200  # the copy works while the session lives

    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303

    assert_error(thief.get("/api/wallet/me"), 401, "unauthorized")
    tip = thief.post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 10},
                     headers={"X-CSRFToken": csrf, "Idempotency-Key": str(uuid.uuid4())})
    assert_error(tip, 401, "unauthorized")
    assert balance(fan.id) == 500
    page = thief.get("/wallet")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert sessions_of(fan.id) == 0


def test_logout_ends_only_this_browsers_session(app, client, new_client, make_fan, login):
    fan = make_fan()
    login(fan)
    phone = new_client()
    phone.post("/login", data={"email": fan.email, "password": fan.test_password,
                               "csrf_token": csrf_from(phone, "/login")})
    assert phone.get("/api/wallet/me").status_code == 200

    client.post("/logout", data={"csrf_token": csrf_from(client, "/wallet")})

    assert client.get("/api/wallet/me").status_code == 401
    assert phone.get("/api/wallet/me").status_code == 200


def test_a_logout_on_one_instance_is_seen_by_another_at_once(app, make_app, client, make_fan, login):
    """Instances share no memory: the session lives in PostgreSQL, which both read."""
    fan = make_fan()
    csrf = login(fan)
    other_instance = browser_with(make_app(), cookie_of(client))
    assert other_instance.get("/api/wallet/me").status_code == 200

    client.post("/logout", data={"csrf_token": csrf})

    assert other_instance.get("/api/wallet/me").status_code == 401


def test_a_session_idle_longer_than_session_idle_days_has_ended(client, make_fan, login, ctx):
    fan = make_fan()
    login(fan)
    last_seen_ago(fan.id, "31 days")
    assert client.get("/api/wallet/me").status_code == 401


def test_last_seen_is_refreshed_at_most_every_few_minutes_not_on_every_request(client, make_fan, login, ctx):
    fan = make_fan()
    login(fan)
    last_seen_ago(fan.id, "2 minutes")
    seen = lambda: db.session.scalar(text(  # noqa: E731
        "SELECT now() - last_seen_at > interval '1 minute' FROM user_sessions WHERE user_id = :u"), {"u": fan.id})
    client.get("/api/wallet/me")
    db.session.commit()
    assert seen(), "a request 2 minutes after the last refresh must not write"

    last_seen_ago(fan.id, "6 minutes")
    assert client.get("/api/wallet/me").status_code == 200
    db.session.commit()
    assert not seen(), "a request 6 minutes after the last refresh records the visit"


def test_a_session_cookie_of_another_user_id_is_refused(app, client, make_fan, login):
    """The session row names its user: a cookie whose user id was swapped (were the
    secret key ever known) still needs that user's own session secret."""
    victim, fan = make_fan(), make_fan()
    login(fan)
    with client.session_transaction() as sess:
        sess["_user_id"] = str(victim.id)
    assert client.get("/api/wallet/me").status_code == 401


# ---- password change ----------------------------------------------------------------

def logged_in_browsers(app, new_client, user, n=2):
    browsers = []
    for _ in range(n):
        b = new_client()
        resp = b.post("/login", data={"email": user.email, "password": user.test_password,
                                      "csrf_token": csrf_from(b, "/login")})
        assert resp.status_code == 303
        browsers.append(b)
    return browsers


def test_a_password_change_ends_every_other_session_and_token_and_keeps_this_browser(
        app, client, new_client, make_fan, login, api_headers):
    fan = make_fan()
    csrf = login(fan)
    old_copy = browser_with(app, cookie_of(client))
    phone, laptop = logged_in_browsers(app, new_client, fan)
    bearer = api_headers(fan)

    resp = client.post("/account/password", data={"currentPassword": fan.test_password,
                                                  "newPassword": NEW_PASSWORD, "csrf_token": csrf})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/account")

    assert client.get("/api/wallet/me").status_code == 200  # this browser: a new session
    for other in (old_copy, phone, laptop):
        assert other.get("/api/wallet/me").status_code == 401
    assert_error(client.get("/api/wallet/me", headers=bearer), 401, "invalid_token")
    assert sessions_of(fan.id) == 1 and tokens_of(fan.id) == 0
    assert "Password changed" in client.get("/account").get_data(as_text=True)

    fresh = new_client()
    token = csrf_from(fresh, "/login")
    assert fresh.post("/login", data={"email": fan.email, "password": fan.test_password,
                                      "csrf_token": token}).status_code == 401
    assert fresh.post("/login", data={"email": fan.email, "password": NEW_PASSWORD,
                                      "csrf_token": token}).status_code == 303


def test_a_wrong_current_password_is_shown_at_its_field_and_changes_nothing(
        app, client, new_client, make_fan, login, api_headers):
    fan = make_fan()
    csrf = login(fan)
    [phone] = logged_in_browsers(app, new_client, fan, 1)
    bearer = api_headers(fan)
    resp = client.post("/account/password", data={"currentPassword": "not-my-password",
                                                  "newPassword": NEW_PASSWORD, "csrf_token": csrf},
                       headers={"HX-Request": "true"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="password-form"' in html and "<html" not in html
    assert re.search(r'id="currentPassword-error"[^>]*>Your current password is not correct', html)
    assert phone.get("/api/wallet/me").status_code == 200
    assert client.get("/api/wallet/me", headers=bearer).status_code == 200
    assert client.get("/api/wallet/me").status_code == 200


def test_a_too_short_new_password_is_shown_at_its_field_and_changes_nothing(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    resp = client.post("/account/password", data={"currentPassword": fan.test_password, "newPassword": "short",
                                                  "csrf_token": csrf}, headers={"HX-Request": "true"})
    assert resp.status_code == 422
    assert re.search(r'id="newPassword-error"[^>]*>New password must be at least 8', resp.get_data(as_text=True))
    assert client.get("/api/wallet/me").status_code == 200


def test_changing_the_password_needs_the_csrf_token(client, make_fan, login):
    fan = make_fan()
    login(fan)
    resp = client.post("/account/password", data={"currentPassword": fan.test_password,
                                                  "newPassword": NEW_PASSWORD})
    assert resp.status_code == 400
    assert client.get("/api/wallet/me").status_code == 200


# ---- log out everywhere -------------------------------------------------------------

def test_log_out_everywhere_ends_every_session_and_revokes_every_token(
        app, client, new_client, make_fan, login, api_headers):
    fan, bystander = make_fan(), make_fan()
    csrf = login(fan)
    [phone] = logged_in_browsers(app, new_client, fan, 1)
    bearer, their_bearer = api_headers(fan), api_headers(bystander)

    resp = client.post("/account/logout-everywhere", data={"csrf_token": csrf})
    assert resp.status_code == 303 and "/login" in resp.headers["Location"]

    for browser in (client, phone):
        assert browser.get("/api/wallet/me").status_code == 401
    assert_error(client.get("/api/wallet/me", headers=bearer), 401, "invalid_token")
    assert sessions_of(fan.id) == 0 and tokens_of(fan.id) == 0
    assert client.get("/api/wallet/me", headers=their_bearer).status_code == 200  # nobody else's
    assert "logged out everywhere" in client.get("/login").get_data(as_text=True)


# ---- the sessions list on /account ---------------------------------------------------

def test_the_account_page_lists_each_browser_and_can_log_one_out(app, client, new_client, make_fan, login):
    fan = make_fan()
    login(fan)
    [phone] = logged_in_browsers(app, new_client, fan, 1)
    html = client.get("/account").get_data(as_text=True)
    assert html.count('class="chip">This browser') == 1
    ids = sorted({int(i) for i in re.findall(r'/account/sessions/(\d+)/end', html)})
    assert len(ids) == 1  # the other browser; this one has the usual Log out button

    resp = client.post(f"/account/sessions/{ids[0]}/end", headers={"HX-Request": "true",
                                                                    "X-CSRFToken": csrf_in(html)})
    assert resp.status_code == 200 and 'id="access-lists"' in resp.get_data(as_text=True)
    assert phone.get("/api/wallet/me").status_code == 401
    assert client.get("/api/wallet/me").status_code == 200


def test_nobody_can_end_another_users_session(app, client, new_client, make_fan, login):
    owner, other = make_fan(), make_fan()
    [owner_browser] = logged_in_browsers(app, new_client, owner, 1)
    owner_session = db.session.scalar(text("SELECT id FROM user_sessions WHERE user_id = :u"), {"u": owner.id})
    csrf = login(other)
    resp = client.post(f"/account/sessions/{owner_session}/end", data={"csrf_token": csrf},
                       headers={"Accept": "application/json"})
    assert_error(resp, 404, "session_not_found")
    assert owner_browser.get("/api/wallet/me").status_code == 200


# ---- CSRF lifetime ------------------------------------------------------------------

def test_a_csrf_token_older_than_its_lifetime_is_refused(make_app, make_fan):
    short = make_app(CSRF_TOKEN_TTL_SECONDS=1)
    fan = make_fan(balance=100)
    client = fresh_client(short)
    client.post("/login", data={"email": fan.email, "password": fan.test_password,
                                "csrf_token": csrf_from(client, "/login")})
    csrf = csrf_from(client, "/wallet")
    time.sleep(2.1)
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 10},
                       headers={"X-CSRFToken": csrf, "Idempotency-Key": str(uuid.uuid4())})
    assert_error(resp, 400, "csrf_failed")
    assert balance(fan.id) == 100
    fresh = csrf_from(client, "/wallet")
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 10},
                       headers={"X-CSRFToken": fresh, "Idempotency-Key": str(uuid.uuid4())})
    assert resp.status_code == 201


def test_the_default_csrf_lifetime_is_twelve_hours(app):
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 12 * 3600


# ---- open sockets -------------------------------------------------------------------

def closed_within(viewer, seconds: float) -> bool:
    viewer.collect(seconds)
    return viewer.closed


def test_logging_out_closes_the_sessions_open_sockets_and_only_those(client, new_client, make_fan, make_stream,
                                                                     login, live_server):
    from tests.realtime.helpers import Api, Viewer
    api, live = Api(live_server), make_stream(title="Socket test", live=True)
    fan = make_fan()
    csrf = login(fan)
    mine = {"Cookie": f"session={cookie_of(client)}"}
    [phone] = logged_in_browsers(client.application, new_client, fan, 1)
    theirs = {"Cookie": f"session={cookie_of(phone)}"}
    me, feed = Viewer(api.ws("/ws/me"), mine), Viewer(api.ws("/ws/me"), theirs)
    stream = Viewer(api.ws(f"/ws/channels/{live.channel}"), mine)
    try:
        for viewer in (me, feed, stream):
            assert viewer.receive(5) is not None  # the state sync: open and subscribed
        client.post("/logout", data={"csrf_token": csrf})
        assert closed_within(me, 3) and closed_within(stream, 1)
        assert not closed_within(feed, 1.5), "another browser's socket stays open"
    finally:
        for viewer in (me, feed, stream):
            viewer.close()


def test_log_out_everywhere_closes_sockets_opened_with_a_token(client, make_fan, login, api_headers, live_server):
    from tests.realtime.helpers import Api, Viewer
    fan = make_fan()
    viewer = Viewer(Api(live_server).ws("/ws/me"), api_headers(fan))
    try:
        assert viewer.receive(5) is not None
        csrf = login(fan)
        client.post("/account/logout-everywhere", data={"csrf_token": csrf})
        assert closed_within(viewer, 3)
    finally:
        viewer.close()


@pytest.mark.parametrize("agent,shown", [
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
     "Chrome on Android"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
     "Mobile/15E148 Safari/604.1", "Safari on iPhone"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 "
     "Edg/126.0", "Edge on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on macOS"),
    ("python-requests/2.32", "An app or unknown browser"),
    ("", "An app or unknown browser"),
])
def test_sessions_are_listed_by_browser_and_system(agent, shown):
    from app.auth.models import describe_user_agent
    assert describe_user_agent(agent) == shown
