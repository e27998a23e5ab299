"""Accounts: sign-up, credential checks, API tokens, becoming a creator."""
from __future__ import annotations

import hashlib
import secrets

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app import ledger, validation
from app.auth.models import ROLES, ApiToken, User
from app.errors import Conflict, Forbidden, Unauthorized
from app.extensions import db

PASSWORD_MIN, PASSWORD_MAX = 8, 128
DISPLAY_NAME_MAX = 50
TOKEN_PREFIX = "pm_"
_BAD_CREDENTIALS = "Email or password is incorrect."


def register(email, password, display_name, role="fan") -> User:
    """Create a user with a wallet (and earnings account for creators); commits.

    Raises `InvalidValue` listing every bad field, `Conflict` (email_taken)
    when the address is already registered.
    """
    errors = validation.Errors()
    email = errors.check("email", validation.email_address, email)
    password = errors.check("password", validation.text_value, password, "password", label="Password",
                            max_length=PASSWORD_MAX, min_length=PASSWORD_MIN, strip=False,
                            single_line=False)
    display_name = errors.check("displayName", validation.text_value, display_name, "displayName",
                                label="Display name", max_length=DISPLAY_NAME_MAX)
    role = errors.check("role", validation.choice, role, "role", ROLES, label="Role")
    errors.raise_if_any()

    user = User(email=email, display_name=display_name, role=role,
                password_hash=generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"]))
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("An account with this email already exists. Log in instead.", "email_taken",
                       field="email") from None
    ledger.open_account("wallet", user.id)
    if user.is_creator:
        ledger.open_account("earnings", user.id)
    db.session.commit()
    return user


def authenticate(email, password) -> User:
    """The user for these credentials, or `Unauthorized` — identical for an
    unknown email and a wrong password, including the time it takes."""
    if not isinstance(email, str) or not isinstance(password, str) or len(password) > PASSWORD_MAX \
            or len(email) > 254 or validation.has_control_characters(email):
        raise Unauthorized(_BAD_CREDENTIALS, "invalid_credentials")
    user = db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        # Spend the same hashing time as a real check so timing reveals nothing.
        check_password_hash(_dummy_hash(), password)
        raise Unauthorized(_BAD_CREDENTIALS, "invalid_credentials")
    if not check_password_hash(user.password_hash, password):
        raise Unauthorized(_BAD_CREDENTIALS, "invalid_credentials")
    return user


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("auth_dummy_hash", {})
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in cache:
        cache[method] = generate_password_hash(secrets.token_hex(16), method=method)
    return cache[method]


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(user: User) -> str:
    """A new bearer token for `user`; the raw value is returned once and never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=_hash_token(raw)))
    db.session.commit()
    return raw


def user_for_token(raw: str) -> User | None:
    if not raw or len(raw) > 200:
        return None
    # Looking up by hash: the comparison happens on a digest, not the secret.
    return db.session.scalar(
        select(User).join(ApiToken, ApiToken.user_id == User.id).where(ApiToken.token_hash == _hash_token(raw))
    )


def require_creator(user, message: str = "This is for creators. Become a creator from your account page.") -> None:
    """`Forbidden` (not_a_creator) unless `user` is a creator."""
    if not getattr(user, "is_creator", False):
        raise Forbidden(message, "not_a_creator")


def become_creator(user: User) -> User:
    """Turn a fan into a creator (idempotent); opens their earnings account."""
    if not user.is_creator:
        user.role = "creator"
    ledger.open_account("earnings", user.id)
    db.session.commit()
    return user
