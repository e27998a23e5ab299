from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

ROLES = ("fan", "creator")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(50))
    role: Mapped[str] = mapped_column(String(16), server_default=text("'fan'"))
    # Secret path segment of the creator's OBS browser-source overlay (regenerable).
    overlay_secret: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The creator's secret key for publishing video to the media server (regenerable).
    stream_key: Mapped[str | None] = mapped_column(String(64))
    # Pay-per-minute calls: the creator's rate (tokens per minute) and whether fans may call.
    call_rate_tokens_per_min: Mapped[int | None] = mapped_column(BigInteger)
    calls_enabled: Mapped[bool] = mapped_column(server_default=text("false"))
    # Operators see the platform view (/dashboard/platform); set by hand or by the seed.
    is_operator: Mapped[bool] = mapped_column(server_default=text("false"))
    # The creator page's address, /c/<handle> (DESIGN.md §13): [a-z0-9_]{3,30}, unique. Every
    # creator gets one at sign-up (app.profiles.service.assign_default_handle); fans have none.
    handle: Mapped[str | None] = mapped_column(String(30))
    bio: Mapped[str] = mapped_column(String(500), server_default="")
    # None: no avatar. Bumped on each upload so the image URL changes (app.profiles).
    avatar_version: Mapped[int | None] = mapped_column(Integer)
    # A creator's alert controls (app/alerts, DESIGN.md §12): tips under alert_min_tokens
    # don't pop up; profanity masked when shown; OBS shows messages once approved; the
    # OBS source's sound (a shipped sound's name; None: silent).
    alert_min_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    profanity_filter: Mapped[bool] = mapped_column(server_default=text("false"))
    require_approval: Mapped[bool] = mapped_column(server_default=text("false"))
    alert_sound: Mapped[str | None] = mapped_column(String(20))
    # A fan's own cap on tokens spent per UTC day (app/protections); None: no cap.
    daily_spend_limit_tokens: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        CheckConstraint("alert_min_tokens >= 0", name="alert_min_tokens"),
        CheckConstraint("alert_sound ~ '^[a-z0-9-]{1,20}$'", name="alert_sound_form"),
        CheckConstraint("daily_spend_limit_tokens > 0", name="daily_spend_limit_positive"),
        Index("uq_users_email_lower", func.lower(email), unique=True),
        Index("uq_users_handle", "handle", unique=True),
        CheckConstraint("handle ~ '^[a-z0-9_]{3,30}$'", name="handle_form"),
        CheckConstraint("call_rate_tokens_per_min IS NULL OR call_rate_tokens_per_min BETWEEN 1 AND 100000",
                        name="call_rate_range"),
    )

    @property
    def is_creator(self) -> bool:
        return self.role == "creator"

    def to_dict(self) -> dict:
        return {"id": self.id, "email": self.email, "displayName": self.display_name, "role": self.role}


class ApiToken(db.Model):
    """A bearer token for API clients; only its SHA-256 is stored. It stops
    working at `expires_at` or when its row is deleted (revoked)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Recorded at most once a minute per token (see auth.service.authenticate_token).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def to_dict(self) -> dict:
        return {"id": self.id, "createdAt": _iso(self.created_at), "lastUsedAt": _iso(self.last_used_at),
                "expiresAt": _iso(self.expires_at)}


class UserSession(db.Model):
    """One logged-in browser. The session cookie holds a random secret; only
    its SHA-256 is stored here. Deleting the row ends the session everywhere."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Refreshed at most every few minutes (see auth.sessions); idle sessions expire.
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    user_agent: Mapped[str] = mapped_column(String(200), server_default="")

    @property
    def device(self) -> str:
        """"Chrome on Android", "Safari on iPhone"…: enough for a person to recognise it."""
        return describe_user_agent(self.user_agent)


# First match wins: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("CrOS", "ChromeOS"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"))


def describe_user_agent(agent: str) -> str:
    browser = next((name for marker, name in _BROWSERS if marker in agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "An app or unknown browser"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
