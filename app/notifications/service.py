"""In-app notifications (DESIGN.md §13): written set-based for many users at once,
listed newest first, counted unread, marked read.

A notification's `dedupe_key` is unique per user, so writing the same event again
(a fan-out job run twice, or by its sweep too) leaves one row and changes nothing.
Every change is published to the user's `/ws/me` after its commit (pushes.py):
the bell shows the new unread count in every tab they have open.
"""
from __future__ import annotations

from flask import current_app
from redis import RedisError
from sqlalchemy import Select, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert

from app import validation
from app.errors import InvalidValue, NotFound
from app.extensions import db
from app.notifications import pushes
from app.notifications.models import Notification
from app.push import service as push
from app.redis_client import get_redis

PAGE_SIZE = 50
PAGE_SIZE_MAX = 100
# Ids one "mark read" may name: a page's worth, with room to spare.
MARK_READ_MAX_IDS = 500
TEXT_MAX = 300  # the column's size


def notify_many(user_ids: Select, type_: str, text: str, url: str, dedupe_key: str) -> dict[int, int]:
    """Give every user `user_ids` selects (a one-column SELECT, run in the database:
    no ids pass through Python) one notification; commits, then updates their bells.
    A user who has the `dedupe_key` already is left alone. Returns {user id: unread
    count} of the users who got one now (empty when the event was announced before)."""
    text = text if len(text) <= TEXT_MAX else text[:TEXT_MAX - 1] + "…"
    subquery = user_ids.subquery()
    # One statement whatever the audience: INSERT … SELECT, a repeat skipped by the unique
    # (user_id, dedupe_key); RETURNING names only the users who got a row now.
    inserted = db.session.execute(
        insert(Notification)
        .from_select(["user_id", "type", "text", "url", "dedupe_key"],
                     select(subquery.c[0], literal(type_), literal(text), literal(url), literal(dedupe_key)))
        .on_conflict_do_nothing(index_elements=["user_id", "dedupe_key"])
        .returning(Notification.user_id)).scalars().all()
    counts = _unread_counts(inserted) if inserted else {}
    db.session.commit()
    pushes.bells_changed(counts)
    return counts


def _unread_counts(user_ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(Notification.user_id, func.count()).where(Notification.user_id.in_(user_ids),
                                                         Notification.read_at.is_(None))
        .group_by(Notification.user_id))
    counts = dict.fromkeys(user_ids, 0)
    counts.update(dict(rows.tuples().all()))
    return counts


def unread_count(user_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)))


def list_for(user_id: int, before=None, limit=None) -> list[Notification]:
    """`user_id`'s notifications, newest first: at most `limit` (default PAGE_SIZE,
    at most PAGE_SIZE_MAX), only those older than the id `before` when given (the
    cursor: the last id of the previous page). `InvalidValue` for a `before` that is
    no id or a `limit` out of range (both as the API's query text or as integers)."""
    before = _query_int(before, "before", "before must be a notification id.", minimum=1)
    limit = _query_int(limit, "limit", f"limit must be a whole number from 1 to {PAGE_SIZE_MAX}.",
                       minimum=1, maximum=PAGE_SIZE_MAX)
    query = select(Notification).where(Notification.user_id == user_id)
    if before is not None:
        query = query.where(Notification.id < before)
    return list(db.session.scalars(query.order_by(Notification.id.desc()).limit(limit or PAGE_SIZE)))


def _query_int(value, field: str, message: str, *, minimum: int, maximum: int = validation.BIGINT_MAX):
    if value is None:
        return None
    if isinstance(value, str):
        value = validation.ascii_int(value, maximum)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidValue(message, field=field)
    return value


def mark_read(user, ids=None) -> int:
    """Mark `user`'s notifications read: all of them when `ids` is None, else those
    of `ids` that are theirs (other people's ids, unknown ids and ones read already
    change nothing; an empty list marks nothing). Commits, updates the bell in every
    tab of theirs, and returns their unread count. `InvalidValue` (field ids) when
    `ids` is not a list of at most MARK_READ_MAX_IDS notification ids."""
    if ids is not None:
        if not isinstance(ids, list) or not all(validation.is_record_id(i) for i in ids):
            raise InvalidValue("ids must be a list of notification ids.", field="ids")
        if len(ids) > MARK_READ_MAX_IDS:
            raise InvalidValue(f"Mark at most {MARK_READ_MAX_IDS} notifications at a time.", field="ids")
    query = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if ids is not None:
        query = query.where(Notification.id.in_(ids))
    changed = db.session.execute(query.values(read_at=func.now())).rowcount
    unread = unread_count(user.id)
    db.session.commit()
    if changed:
        pushes.bells_changed({user.id: unread})
    return unread


def open_notification(user, notification_id: int) -> str:
    """Mark `user`'s notification read and return where it points. `NotFound` for
    an unknown id or someone else's notification (the same answer: no probing)."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id:
        raise NotFound("No such notification.", "notification_not_found")
    url = notification.url
    if notification.read_at is None:
        mark_read(user, [notification.id])
    return url if validation.is_local_path(url) else "/notifications"


# ---- "went live": every follower of the creator, once per stream ------------------------------

ANNOUNCED_TTL_SECONDS = 2 * 24 * 3600  # longer than any stream stays live


def announce_live(stream_id: int) -> int:
    """Tell every follower of the stream's creator that it went live ("<Creator> is
    live: <title>", linking to the stream): one notification per follower per stream,
    however often this runs. A stream no longer live (ended before the job ran) is
    announced to no one. Returns how many followers were notified now. Marks the
    stream announced (see `unannounced_live_streams`)."""
    from app.auth.models import User
    from app.follows.service import follower_ids
    from app.streams import service as streams

    try:
        stream = streams.get_stream(stream_id)
    except NotFound:
        return 0
    notified: dict[int, int] = {}
    if stream.status == "live":
        creator = db.session.get(User, stream.creator_id)
        name, title, url = creator.display_name, stream.title, f"/streams/{stream.id}"
        notified = notify_many(follower_ids(creator.id), "live", f"{name} is live: {title}", url,
                               f"live:{stream.id}")
    db.session.rollback()  # end the read-only transaction of the not-live case
    _mark_announced(stream_id)
    if notified:
        # Only the followers notified just now: a second run of this job pushes to no one again.
        push.push_to_users(notified, "live", f"{name} is live", title, url, tag=f"live-{stream_id}")
    return len(notified)


def unannounced_live_streams(window_minutes: int) -> list[int]:
    """Streams that went live in the last `window_minutes` and were not marked
    announced: their job was never queued (Redis down at the start), lost, or has
    not run yet. Redis unavailable: all of them (announcing again is harmless)."""
    from app.streams import service as streams

    stream_ids = streams.live_since(window_minutes)
    if not stream_ids:
        return []
    try:
        marked = get_redis().mget([_announced_key(i) for i in stream_ids])
    except RedisError:
        return stream_ids
    return [stream_id for stream_id, mark in zip(stream_ids, marked) if mark is None]


def _mark_announced(stream_id: int) -> None:
    try:
        get_redis().set(_announced_key(stream_id), 1, ex=ANNOUNCED_TTL_SECONDS)
    except RedisError:
        pass  # the sweep announces it again, which changes nothing


def _announced_key(stream_id: int) -> str:
    return f"{current_app.config['REDIS_PREFIX']}notifications:announced:{stream_id}"
