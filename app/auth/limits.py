"""Rate limits for credentials (DESIGN.md §10): brute force stays expensive,
and a stranger cannot lock the owner out of their account.

Every log-in attempt (the login page and `POST /api/auth/token` share the
counters: one budget, not one per endpoint) is counted three ways, when it
starts — atomically in Redis, so parallel guesses cannot slip past a limit:

- **per account and client** (`LOGIN_LIMIT_PER_ACCOUNT_CLIENT`, tight, with
  stacked windows so the wait grows: a minute after 5 attempts, the rest of
  the hour after 20, of the day after 50). The client is this browser's
  device cookie when it has logged in to this account before, else its IP.
  A successful log-in clears this counter, so the owner's own typos never
  add up;
- **per account, for clients that never logged in to it**
  (`LOGIN_LIMIT_PER_ACCOUNT`, loose: 50 an hour, 200 a day). It caps a
  botnet that tries each password from another address. A browser the
  owner has logged in from before carries a signed device cookie naming
  the account and is exempt: a stranger can slow down *new* devices of the
  account, never lock the owner out of theirs;
- **per IP** over all accounts (`LOGIN_LIMIT_PER_IP`): credential stuffing.

Sign-ups share one per-IP budget.
"""
from __future__ import annotations

import hashlib
import secrets

from flask import after_this_request, current_app, request
from flask_limiter.util import get_remote_address
from itsdangerous import BadSignature, URLSafeSerializer

from app.extensions import limiter

DEVICE_COOKIE = "pm_login_device"
_DEVICE_ACCOUNTS = 5  # accounts one browser is remembered for (a shared computer)
_CLIENT_SCOPE = "login-client"


def _attempted_email() -> str:
    data = request.get_json(silent=True) if request.is_json else None
    email = (data.get("email") if isinstance(data, dict) else None) or request.form.get("email") or ""
    return email.strip().lower()[:254] if isinstance(email, str) else ""


def _account_digest(email: str) -> str:
    # The cookie is signed, not encrypted: it names accounts by digest, not by address.
    return hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()[:32]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="login-device")


def _device() -> dict:
    """This browser's device cookie: {"n": nonce, "a": [account digests]} or {}."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or len(raw) > 1024:
        return {}
    try:
        value = _serializer().loads(raw)
    except BadSignature:
        return {}
    ok = isinstance(value, dict) and isinstance(value.get("n"), str) and isinstance(value.get("a"), list)
    return value if ok else {}


def _known_device() -> bool:
    """Has this browser logged in to the attempted account before?"""
    return _account_digest(_attempted_email()) in _device().get("a", ())


def _account_key() -> str:
    return f"login-account:{_attempted_email()}"


def _account_client_key() -> str:
    client = f"device:{_device()['n']}" if _known_device() else f"ip:{get_remote_address()}"
    return f"login-account-client:{_attempted_email()}:{client}"


def _ip_key() -> str:
    return f"login-ip:{get_remote_address()}"


_login_per_account_client = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT_CLIENT"], scope=_CLIENT_SCOPE,
    key_func=_account_client_key, methods=["POST"])
_login_per_account = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], scope="login-account", key_func=_account_key,
    methods=["POST"], exempt_when=_known_device)
_login_per_ip = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"], scope="login-ip", key_func=_ip_key, methods=["POST"])
_signup_per_ip = limiter.shared_limit(
    lambda: current_app.config["SIGNUP_LIMIT_PER_IP"], scope="signup-ip", methods=["POST"])


def login_limits(view):
    return _login_per_ip(_login_per_account(_login_per_account_client(view)))


def signup_limits(view):
    return _signup_per_ip(view)


def login_succeeded() -> None:
    """After a successful log-in: forget this client's failed attempts on the
    account, and remember this browser as one the owner uses (the device
    cookie, set on the response), so no stranger can lock it out later."""
    for limit in limiter.current_limits:
        if _CLIENT_SCOPE in limit.request_args:
            try:
                limit.limiter.clear(limit.limit, *limit.request_args)
            except Exception:  # noqa: BLE001 - storage down: the counter simply runs out
                pass
    device = _device()
    digest = _account_digest(_attempted_email())
    accounts = [digest] + [a for a in device.get("a", []) if a != digest][:_DEVICE_ACCOUNTS - 1]
    value = _serializer().dumps({"n": device.get("n") or secrets.token_urlsafe(12), "a": accounts})

    @after_this_request
    def _remember(response):
        response.set_cookie(DEVICE_COOKIE, value, max_age=365 * 86400, httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
        return response
