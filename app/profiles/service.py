"""Creator profiles: the handle of `/c/<handle>` (DESIGN.md §13).

A handle is 3–30 characters of [a-z0-9_] and unique (the database enforces both:
`uq_users_handle`, `ck_users_handle_form`). Every creator gets one at sign-up
from their display name and id; they may change it later.
"""
from __future__ import annotations

import re
import secrets

from sqlalchemy import exists, select

from app.auth.models import User
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
