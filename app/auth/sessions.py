"""Browser sessions that really end (DESIGN.md §10).

Flask's session is a signed cookie: on its own, a copy taken before logout
would stay valid for ever. So every log-in also creates a `user_sessions`
row and puts a random secret in the cookie (only its SHA-256 is stored); a
request is logged in only while that row exists and was used within
`SESSION_IDLE_DAYS`. Logging out deletes the row; a password change and
"log out everywhere" delete all of the user's rows (and API tokens).

Why rows in PostgreSQL rather than a per-user version number or Redis:
- a row per browser lets logout end *this* browser's session (every copy of
  its cookie) without logging the user out of their phone too, and lets the
  account page list where they are logged in;
- the check rides on the user lookup Flask-Login does on every request
  anyway (one joined query), so it costs no extra round trip, and every web
  instance sees a logout at the same moment;
- a session is a durable fact: a Redis outage must log nobody out (or in).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from flask import current_app, g, request, session
from flask_login import current_user, login_user, logout_user
from sqlalchemy import delete, func, select, update

from app.auth.models import ApiToken, User, UserSession
from app.extensions import db
from app.push import service as push
from app.realtime.bus import credentials_ended

SESSION_KEY = "sid"
# last_seen_at is refreshed at most this often: a write per request would be
# a write on every page view for an idle-timeout measured in days.
TOUCH_EVERY = timedelta(minutes=5)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def log_in(user: User) -> None:
    """Start a new session for `user` in this browser; commits.

    Whatever the cookie held before (an anonymous visit, another account, its
    CSRF token) is discarded, so nothing of an earlier session carries over.
    """
    raw = secrets.token_urlsafe(32)
    db.session.add(UserSession(user_id=user.id, secret_hash=_hash(raw),
                               user_agent=(request.user_agent.string or "")[:200]))
    db.session.commit()
    session.clear()
    login_user(user)
    session[SESSION_KEY] = raw


def log_out() -> None:
    """End this browser's session: its row is deleted, so every copy of the
    cookie stops working on every instance, and its open sockets close; commits."""
    raw = session.get(SESSION_KEY)
    if isinstance(raw, str) and raw:
        ended = db.session.scalars(delete(UserSession).where(UserSession.secret_hash == _hash(raw))
                                   .returning(UserSession.id)).all()
        db.session.commit()
        credentials_ended("session", ended)
    logout_user()
    session.clear()


def end_all(user: User) -> None:
    """Log `user` out everywhere: every browser session and every API token
    stops working at once (the current browser too), the sockets opened
    with them close, and no device of theirs gets push notifications any more;
    commits."""
    ended = db.session.scalars(delete(UserSession).where(UserSession.user_id == user.id)
                               .returning(UserSession.id)).all()
    revoked = db.session.scalars(delete(ApiToken).where(ApiToken.user_id == user.id).returning(ApiToken.id)).all()
    push.forget_devices(user.id)  # a lost phone stops showing this account's notifications too
    db.session.commit()
    credentials_ended("session", ended)
    credentials_ended("token", revoked)


def current_session_id() -> int | None:
    """The `user_sessions` id of this request's browser session, if logged in by cookie."""
    return g.get("session_id")


def user_for_session(user_id) -> User | None:
    """Flask-Login's user loader: the user of this request's session cookie, or
    None when the cookie's session was ended, has been idle too long, or
    belongs to someone else."""
    raw = session.get(SESSION_KEY)
    if not isinstance(raw, str) or not raw:
        return None
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    idle = timedelta(days=current_app.config["SESSION_IDLE_DAYS"])
    row = db.session.execute(
        select(User, UserSession.id, UserSession.last_seen_at)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.secret_hash == _hash(raw), User.id == user_id,
               UserSession.last_seen_at > func.now() - idle)).first()
    if row is None:
        return None
    user, session_id, last_seen = row
    g.session_id = session_id
    g.session_stale = last_seen < datetime.now(timezone.utc) - TOUCH_EVERY
    return user


def start_request() -> None:
    """Resolve this request's cookie session now, at its start, and record the
    visit when `last_seen_at` is stale. The write commits at once, while the
    request's transaction holds nothing else (Flask-Login would otherwise load
    the user lazily, possibly mid-transaction; and a second connection for the
    write would deadlock a pool that many requests hold)."""
    if not session.get(SESSION_KEY) or not current_user.is_authenticated or not g.get("session_stale"):
        return
    db.session.execute(update(UserSession).where(UserSession.id == g.session_id).values(last_seen_at=func.now()))
    db.session.commit()
    g.session_stale = False


def sessions_of(user: User) -> list[UserSession]:
    """The user's live browser sessions, most recently used first."""
    idle = timedelta(days=current_app.config["SESSION_IDLE_DAYS"])
    return list(db.session.scalars(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.last_seen_at > func.now() - idle)
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())))


def end_session(user: User, session_id: int) -> bool:
    """End one of `user`'s sessions (another browser, from the account page);
    False when there is no such session of theirs. Commits."""
    ended = db.session.scalars(delete(UserSession).where(UserSession.id == session_id,
                                                         UserSession.user_id == user.id)
                               .returning(UserSession.id)).all()
    db.session.commit()
    credentials_ended("session", ended)
    return bool(ended)
