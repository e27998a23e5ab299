"""Rate limits for credentials: per IP and per account (DESIGN.md §10)."""
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


def login_limits(view):
    view = limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], key_func=_account_key,
                         methods=["POST"], scope="login-account")(view)
    return limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], key_func=_ip_key,
                         methods=["POST"], scope="login-ip")(view)


def signup_limits(view):
    return limiter.limit(lambda: current_app.config["SIGNUP_LIMIT_PER_IP"], methods=["POST"],
                         scope="signup-ip")(view)
