"""Log-in and sign-up rate limits (app/auth/limits.py, DESIGN.md §10): brute
force stays expensive, and a stranger cannot lock the owner out.

Log-in attempts count per account and client (tight; a success clears it),
per account for clients that never logged in to it (loose; a browser the
owner used before is exempt), and per IP; the page and the API share them.
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from app.auth.limits import DEVICE_COOKIE
from tests.conftest import csrf_from, fresh_client, unique_email
from tests.realtime.helpers import call

PASSWORD = "correct-horse-1"


def register(client, email=None) -> str:
    email = email or unique_email("limits")
    resp = client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "displayName": "L",
                                                   "role": "fan"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return email


def attempt(client, email, password, ip="127.0.0.1") -> int:
    """POST /api/auth/token from `ip`; its status."""
    return client.post("/api/auth/token", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip}).status_code


def is_logged_in(client) -> bool:
    return client.get("/api/wallet/me").status_code == 200


# ---- per account and client ---------------------------------------------------------

def test_wrong_passwords_lock_only_the_client_that_sent_them(make_app):
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT_CLIENT="5 per minute")
    email = register(fresh_client(app))
    stranger = fresh_client(app)
    assert [attempt(stranger, email, "guess", "10.0.0.66") for _ in range(6)] == [401] * 5 + [429]
    assert attempt(stranger, email, PASSWORD, "10.0.0.66") == 429  # even the right one, from there
    owner = fresh_client(app)
    assert attempt(owner, email, PASSWORD, "10.0.0.7") == 200  # the owner elsewhere: not locked out


def test_a_successful_login_clears_that_clients_failed_attempts(make_app):
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT_CLIENT="3 per minute")
    email = register(fresh_client(app))
    typo = fresh_client(app)
    for _ in range(3):
        assert [attempt(typo, email, "typo"), attempt(typo, email, "typo"), attempt(typo, email, PASSWORD)] \
            == [401, 401, 200]
    assert [attempt(typo, email, "typo") for _ in range(4)] == [401, 401, 401, 429]


def test_parallel_guesses_cannot_slip_past_the_limit(make_app):
    """Each attempt is counted atomically when it starts, not after its outcome."""
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT_CLIENT="5 per minute")
    email = register(fresh_client(app))
    statuses, start = [], threading.Barrier(24)

    def guess():
        client = fresh_client(app)
        start.wait()
        statuses.append(attempt(client, email, "parallel-guess", "10.0.0.99"))
    threads = [threading.Thread(target=guess) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [401] * 5 + [429] * 19


# ---- per account, for clients that never logged in to it ----------------------------

def test_strangers_hammering_an_account_never_lock_the_owners_own_browser(make_app):
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT_CLIENT="3 per minute", LOGIN_LIMIT_PER_ACCOUNT="5 per hour")
    email = register(fresh_client(app))
    owner = fresh_client(app)
    page = lambda c, password: c.post("/login", data={  # noqa: E731
        "email": email, "password": password, "csrf_token": csrf_from(c, "/login")})
    assert page(owner, PASSWORD).status_code == 303  # the owner's browser, once
    owner.post("/logout", data={"csrf_token": csrf_from(owner, "/wallet")})

    results = [attempt(fresh_client(app), email, "botnet-guess", f"10.1.0.{i}") for i in range(1, 13)]
    # 5 an hour from unknown clients, whatever their addresses: the owner's first
    # log-in (from what was then an unknown browser) was one of them.
    assert results == [401] * 4 + [429] * 8

    new_device = fresh_client(app)
    assert attempt(new_device, email, PASSWORD, "10.2.0.1") == 429  # the price: new devices wait
    assert page(owner, PASSWORD).status_code == 303  # the owner's browser walks in
    assert is_logged_in(owner)


def test_a_forged_device_cookie_or_one_of_another_account_exempts_nothing(make_app):
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT_CLIENT="50 per minute", LOGIN_LIMIT_PER_ACCOUNT="2 per hour")
    victim = register(fresh_client(app))
    attacker = fresh_client(app)
    own = register(attacker)
    assert attempt(attacker, own, PASSWORD) == 200  # the attacker's browser knows *their* account
    assert attacker.get_cookie(DEVICE_COOKIE) is not None
    assert [attempt(attacker, victim, "guess") for _ in range(3)] == [401, 401, 429]

    forger = fresh_client(app)
    forger.set_cookie(DEVICE_COOKIE, "eyJuIjoieCIsImEiOltdfQ.forged-signature")
    assert attempt(forger, victim, "guess", "10.3.0.1") == 429


def test_the_device_cookie_is_httponly_samesite_and_names_no_email(client, make_fan):
    fan = make_fan()
    resp = client.post("/api/auth/token", json={"email": fan.email, "password": fan.test_password})
    cookie = next(v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith(DEVICE_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=" in cookie
    assert fan.email.split("@")[0] not in cookie


def test_failed_attempts_set_no_device_cookie(client, make_fan):
    fan = make_fan()
    client.post("/api/auth/token", json={"email": fan.email, "password": "wrong-password"})
    assert client.get_cookie(DEVICE_COOKIE) is None


# ---- Redis down ---------------------------------------------------------------------

def test_with_redis_down_limits_still_hold_in_memory_and_the_outage_is_logged_once(own_redis, spawn_server):
    server = spawn_server("limits", redis_url=own_redis.url, LOGIN_LIMIT_PER_ACCOUNT_CLIENT="3 per minute")
    api = server.api
    email = unique_email("outage")
    status, _ = call(server.base, "POST", "/api/auth/register", {"email": email, "password": PASSWORD,
                                                        "displayName": "Outage", "role": "fan"})
    assert status == 201
    _fan, fan_h = api.register("fan")
    own_redis.kill()

    statuses = [call(server.base, "POST", "/api/auth/token", {"email": email, "password": "wrong"})[0]
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429], statuses
    for _ in range(10):  # other limited requests keep working, quietly
        status, body = call(server.base, "POST", "/api/tokens/purchase", {"amountTokens": 5},
                                {**fan_h, "Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, body
    time.sleep(0.5)  # let the server's log catch up
    log = server.log()
    assert log.count("Rate limit storage unreachable") == 1, log
    assert "Traceback" not in log, log


@pytest.fixture()
def limited_app(make_app):
    """A second app on the same database and Redis with a 3-per-minute account limit."""
    return make_app(LOGIN_LIMIT_PER_ACCOUNT="3 per minute")


def test_fourth_bad_login_for_one_account_is_429_while_another_account_still_logs_in(limited_app):
    client = fresh_client(limited_app)
    victim, other = unique_email("victim"), unique_email("other")
    for email in (victim, other):
        resp = client.post("/api/auth/register", json={"email": email, "password": PASSWORD,
                                                       "displayName": "Limited", "role": "fan"})
        assert resp.status_code == 201, resp.get_data(as_text=True)

    for _ in range(3):
        resp = client.post("/api/auth/token", json={"email": victim, "password": "wrong-password"})
        assert resp.status_code == 401, resp.get_data(as_text=True)
    fourth = client.post("/api/auth/token", json={"email": victim, "password": "wrong-password"})
    assert fourth.status_code == 429, fourth.get_data(as_text=True)
    body = fourth.get_json()
    assert body["code"] == "rate_limited" and isinstance(body["error"], str) and body["error"]
    assert "Retry-After" in fourth.headers
    # Even the right password is refused for that account now, whatever the case or client.
    correct = fresh_client(limited_app).post("/api/auth/token", json={"email": f" {victim.upper()} ",
                                                                      "password": PASSWORD})
    assert correct.status_code == 429
    # Another account from the same client is still allowed.
    ok = client.post("/api/auth/token", json={"email": other, "password": PASSWORD})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert "token" in ok.get_json()


def test_fourth_bad_html_login_for_one_account_is_429_page(limited_app):
    client = fresh_client(limited_app)
    email = unique_email("form-victim")
    assert client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "displayName": "F",
                                                   "role": "fan"}).status_code == 201
    csrf = csrf_from(client, "/login")
    for _ in range(3):
        assert client.post("/login", data={"email": email, "password": "wrong-password",
                                           "csrf_token": csrf}).status_code == 401
    resp = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
    assert resp.status_code == 429
    assert "Too many requests" in resp.get_data(as_text=True)
    assert not is_logged_in(client)


def test_login_limit_per_account_is_one_budget_across_form_and_api(limited_app):
    client = fresh_client(limited_app)
    email = unique_email("shared-victim")
    assert client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "displayName": "S",
                                                   "role": "fan"}).status_code == 201
    for _ in range(3):
        assert client.post("/api/auth/token", json={"email": email, "password": "wrong"}).status_code == 401
    page = fresh_client(limited_app)
    resp = page.post("/login", data={"email": email, "password": "wrong-password",
                                     "csrf_token": csrf_from(page, "/login")})
    assert resp.status_code == 429
