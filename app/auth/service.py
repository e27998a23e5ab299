"""Accounts: sign-up, credential checks, password changes, API tokens (issued,
listed, revoked, expiring), becoming a creator. Browser sessions: `sessions`."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app import ledger, validation
from app.auth import sessions
from app.auth.models import ROLES, ApiToken, User
from app.profiles import service as profiles
from app.errors import Conflict, Forbidden, InvalidValue, NotFound, Unauthorized
from app.extensions import db
from app.realtime.bus import credentials_ended

PASSWORD_MIN, PASSWORD_MAX = 8, 128
DISPLAY_NAME_MAX = 50
TOKEN_PREFIX = "pm_"
_BAD_CREDENTIALS = "Email or password is incorrect."


def require_operator(user, what: str) -> None:
    """`Forbidden` (not_an_operator), saying "<what> is for operators.", unless
    `user` runs the platform (`is_operator`): the one check of every operator action."""
    if not getattr(user, "is_operator", False):
        raise Forbidden(f"{what} is for operators.", "not_an_operator")


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
        profiles.assign_default_handle(user)
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
    """A new bearer token for `user`, valid for `API_TOKEN_TTL_DAYS`; the raw
    value is returned once and never stored. Commits."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ttl = timedelta(days=current_app.config["API_TOKEN_TTL_DAYS"])
    db.session.add(ApiToken(user_id=user.id, token_hash=_hash_token(raw), expires_at=func.now() + ttl))
    db.session.commit()
    return raw


# last_used_at is written at most this often per token: a write per API call
# would double the cost of the cheapest requests.
_TOKEN_TOUCH_EVERY = timedelta(minutes=1)


def authenticate_token(raw: str) -> tuple[User, int] | None:
    """(user, token id) for a bearer token that exists and has not expired;
    None otherwise (unknown, revoked and expired look the same). Call it at
    the start of a request: recording the token's use may commit."""
    if not raw or len(raw) > 200:
        return None
    # Looking up by hash: the comparison happens on a digest, not the secret.
    row = db.session.execute(
        select(User, ApiToken.id, ApiToken.last_used_at).join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _hash_token(raw), ApiToken.expires_at > func.now())).first()
    if row is None:
        return None
    user, token_id, last_used = row
    if last_used is None or last_used < datetime.now(timezone.utc) - _TOKEN_TOUCH_EVERY:
        # Committed at once: this runs first thing in the request (create_app's
        # `_authenticate`), so nothing else is in the transaction yet. (A second
        # connection instead would deadlock a pool that many requests hold.)
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=func.now()))
        db.session.commit()
    return user, token_id


def tokens_of(user: User) -> list[ApiToken]:
    """The user's API tokens that still work, newest first."""
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at > func.now())
        .order_by(ApiToken.id.desc())))


def revoke_token(user: User, token_id) -> None:
    """Revoke one of `user`'s API tokens: it gets 401 from now on and the
    sockets opened with it close. Commits.

    Raises `NotFound` when `user` has no such token (someone else's included:
    whether an id exists is not theirs to learn).
    """
    if not validation.is_record_id(token_id) or not db.session.execute(
            delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)).rowcount:
        db.session.rollback()
        raise NotFound("No such API token.", "token_not_found")
    db.session.commit()
    credentials_ended("token", [token_id])


def change_password(user: User, current_password, new_password) -> None:
    """Set a new password after checking the current one; every session and
    API token of `user` ends (the caller logs this browser in again). Commits.

    Raises `InvalidValue` (field currentPassword when it is wrong, newPassword
    when the new one breaks the password rules).
    """
    if not isinstance(current_password, str) or len(current_password) > PASSWORD_MAX \
            or not check_password_hash(user.password_hash, current_password):
        raise InvalidValue("Your current password is not correct.", "wrong_password",
                                      field="currentPassword")
    new_password = validation.text_value(new_password, "newPassword", label="New password",
                                         max_length=PASSWORD_MAX, min_length=PASSWORD_MIN, strip=False,
                                         single_line=False)
    user.password_hash = generate_password_hash(new_password, method=current_app.config["PASSWORD_HASH_METHOD"])
    sessions.end_all(user)  # commits the new hash with it


def require_creator(user, message: str = "This is for creators. Become a creator from your account page.") -> None:
    """`Forbidden` (not_a_creator) unless `user` is a creator."""
    if not getattr(user, "is_creator", False):
        raise Forbidden(message, "not_a_creator")


def become_creator(user: User) -> User:
    """Turn a fan into a creator (idempotent); opens their earnings account."""
    if not user.is_creator:
        user.role = "creator"
        profiles.assign_default_handle(user)  # a creator page needs a handle
    ledger.open_account("earnings", user.id)
    db.session.commit()
    return user
