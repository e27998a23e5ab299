"""Creator profiles: the handle of `/c/<handle>` (DESIGN.md §13).

A handle is 3–30 characters of [a-z0-9_] and unique (the database enforces both:
`uq_users_handle`, `ck_users_handle_form`). Every creator gets one at sign-up
from their display name and id; they may change it later.
"""
from __future__ import annotations

import re
import secrets

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from app import validation
from app.auth.models import User
from app.auth import service as auth  # a module: auth.service imports this one
from app.errors import Conflict, InvalidValue
from app.extensions import db

HANDLE_RE = re.compile(r"[a-z0-9_]{3,30}")


def _handle_base(display_name: str) -> str:
    base = re.sub(r"[^a-z0-9_]+", "", display_name.lower())[:12]
    return base if len(base) >= 3 else "creator"


def assign_default_handle(user: User) -> None:
    """Give a flushed creator without a handle `<name>_<id>` (a few random characters
    more if someone already picked exactly that). The caller commits."""
    if not user.is_creator or user.handle:
        return
    candidate = f"{_handle_base(user.display_name)}_{user.id}"
    while db.session.scalar(select(exists().where(User.handle == candidate, User.id != user.id))):
        candidate = f"{candidate[:25]}_{secrets.token_hex(2)}"
    user.handle = candidate


# ---- reading ------------------------------------------------------------------------------

def avatar_url(user) -> str | None:
    """The URL of `user`'s avatar (its version in the query, so a new upload is a new
    URL and the old one may be cached for good), or None when they have none."""
    if not user.avatar_version:
        return None
    # Written out, not url_for: jobs and the CLI build profiles outside a request (the
    # route, profiles.routes.avatar, serves exactly this path).
    return f"/avatars/{user.id}.webp?v={user.avatar_version}"


def profile_of(user) -> dict:
    """The JSON shape of a creator's profile (`{profile}` in the API)."""
    return {"id": user.id, "handle": user.handle, "displayName": user.display_name, "bio": user.bio or "",
            "avatarVersion": user.avatar_version, "avatarUrl": avatar_url(user)}


def creator_by_handle(handle) -> User | None:
    """The creator whose page is /c/<handle>, or None (no such handle, or not a creator)."""
    if not isinstance(handle, str) or not HANDLE_RE.fullmatch(handle):
        return None
    return db.session.scalar(select(User).where(User.handle == handle, User.role == "creator"))


SEARCH_MAX_LENGTH = 100


def search_creators(query, limit: int = 20) -> list[User]:
    """Creators whose display name or handle contains `query` (case-insensitive; `%`,
    `_` and `\\` in it are matched literally), by display name. Empty or over-long
    queries find nothing."""
    if not isinstance(query, str):
        return []
    query = query.strip()[:SEARCH_MAX_LENGTH]
    if not query:
        return []
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", query) + "%"
    return list(db.session.scalars(
        select(User).where(User.role == "creator", User.handle.is_not(None),
                           or_(User.display_name.ilike(pattern, escape="\\"), User.handle.ilike(pattern, escape="\\")))
        .order_by(func.lower(User.display_name), User.id).limit(limit)))


# ---- changing ---------------------------------------------------------------------------

BIO_MAX_LENGTH = 500
_UNCHANGED = object()


def _handle(value) -> str:
    if not isinstance(value, str):
        raise InvalidValue("The handle must be text.", field="handle")
    value = value.strip().lower()
    if not HANDLE_RE.fullmatch(value):
        raise InvalidValue("A handle is 3 to 30 characters: lowercase letters a–z, digits and _.", field="handle")
    return value


def _bio(value) -> str:
    if isinstance(value, str):
        value = value.replace("\r\n", "\n").replace("\r", "\n")  # forms send CRLF; count a line break once
    return validation.text_value(value, "bio", label="Bio", max_length=BIO_MAX_LENGTH, required=False,
                                 single_line=False)


def update_profile(user, handle=_UNCHANGED, bio=_UNCHANGED) -> dict:
    """Change a creator's handle and/or bio (an argument left out stays as it is); commits
    and returns `profile_of(user)`. `Forbidden` (not_a_creator) for fans, `InvalidValue`
    (422, with `field` and `errors`) for a malformed value, `Conflict` (409,
    handle_taken) when another creator has the handle."""
    auth.require_creator(user, "Only creators have a profile page.")
    errors = validation.Errors()
    new_handle = None if handle is _UNCHANGED else errors.check("handle", _handle, handle)
    new_bio = None if bio is _UNCHANGED else errors.check("bio", _bio, bio)
    errors.raise_if_any()
    taken = Conflict("That handle is taken. Try another one.", "handle_taken", field="handle")
    if new_handle is not None and new_handle != user.handle:
        if db.session.scalar(select(exists().where(User.handle == new_handle, User.id != user.id))):
            raise taken
        user.handle = new_handle
    if new_bio is not None:
        user.bio = new_bio
    try:
        db.session.commit()
    except IntegrityError:
        # Someone took the handle between the check and the commit (uq_users_handle).
        db.session.rollback()
        raise taken from None
    return profile_of(user)
