"""Fans follow creators (DESIGN.md §13): follow, unfollow, and who follows whom.

Following is idempotent both ways: following twice leaves one row, unfollowing
someone you do not follow is not an error. Only creators can be followed, and
no one follows themselves (the database refuses that too: `ck_follows_not_self`).
"""
from __future__ import annotations

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from app.auth.models import User
from app.errors import Conflict, NotFound
from app.extensions import db
from app.follows.models import Follow


def _creator(creator_id) -> User:
    creator = db.session.get(User, creator_id) if isinstance(creator_id, int) else None
    if creator is None or not creator.is_creator:
        raise NotFound("No such creator.", "creator_not_found")
    return creator


def follow(user, creator_id: int) -> User:
    """`user` follows the creator `creator_id` (again: no change); commits. `NotFound` for
    an unknown id or a non-creator, `Conflict` (cannot_follow_self) for oneself."""
    creator = _creator(creator_id)
    if creator.id == user.id:
        raise Conflict("You cannot follow yourself.", "cannot_follow_self")
    db.session.execute(insert(Follow).values(follower_id=user.id, creator_id=creator.id)
                       .on_conflict_do_nothing())
    db.session.commit()
    return creator


def unfollow(user, creator_id: int) -> User:
    """`user` stops following `creator_id` (not following: no change); commits."""
    creator = _creator(creator_id)
    db.session.execute(delete(Follow).where(Follow.follower_id == user.id, Follow.creator_id == creator.id))
    db.session.commit()
    return creator


def is_following(user_id: int | None, creator_id: int) -> bool:
    if user_id is None:
        return False
    return db.session.get(Follow, (user_id, creator_id)) is not None


def follower_count(creator_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Follow).where(Follow.creator_id == creator_id))


def follower_ids(creator_id: int) -> Select:
    """A SELECT of the ids of everyone following `creator_id`, for set-based fan-out
    (INSERT … SELECT) without loading them into Python."""
    return select(Follow.follower_id).where(Follow.creator_id == creator_id)


def state(user, creator_id: int) -> dict:
    """`{following, followers}`: whether `user` (maybe logged out) follows `creator_id`,
    and how many do; the API's answer and what the button shows."""
    user_id = user.id if getattr(user, "is_authenticated", False) else None
    return {"following": is_following(user_id, creator_id), "followers": follower_count(creator_id)}
