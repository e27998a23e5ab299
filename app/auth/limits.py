"""Rate limits for credentials (DESIGN.md §10).

Logins are limited per account and per IP, and the counters are *shared*
between the login page and `POST /api/auth/token`: an attacker gets one
budget, not one per endpoint. Sign-ups likewise share one per-IP budget.
"""
from flask import current_app, request
from flask_limiter.util import get_remote_address

from app.extensions import limiter


def _account_key() -> str:
    data = request.get_json(silent=True) if request.is_json else None
    email = (data.get("email") if isinstance(data, dict) else None) or request.form.get("email") or ""
    email = email.strip().lower()[:254] if isinstance(email, str) else ""
    return f"login-account:{email}"


def _ip_key() -> str:
    return f"login-ip:{get_remote_address()}"


_login_per_account = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], scope="login-account", key_func=_account_key,
    methods=["POST"])
_login_per_ip = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"], scope="login-ip", key_func=_ip_key, methods=["POST"])
_signup_per_ip = limiter.shared_limit(
    lambda: current_app.config["SIGNUP_LIMIT_PER_IP"], scope="signup-ip", methods=["POST"])


def login_limits(view):
    return _login_per_ip(_login_per_account(view))


def signup_limits(view):
    return _signup_per_ip(view)
