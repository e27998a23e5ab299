"""Leaderboards (DESIGN.md §12): a stream's top tippers, a creator's top fans, and the
creator's "king" — their top tipper over the last 30 days, crowned in chat and overlay.

Every figure is gross tokens tipped (`tips.amount`), read from the tips: after a storm
the board agrees with the ledger, there is no counter to drift. Ties go to whoever got
there first: of two fans on the same total, the one whose last tip (lowest `max(id)`)
came first ranks higher.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import text

from app import validation
from app.auth.models import User
from app.errors import Forbidden, NotFound
from app.extensions import db
from app.streams.service import can_view, get_stream

KING_DAYS = 30
KING_CACHE_SECONDS = 60
TOP_SIZE = 10
RANGES = ("30d", "all")

_kings: dict[int, tuple[float, int | None]] = {}
_kings_lock = threading.Lock()


@dataclass(frozen=True)
class Tipper:
    user_id: int
    display_name: str
    total_tokens: int

    def to_dict(self) -> dict:
        return {"userId": self.user_id, "displayName": self.display_name, "totalTokens": self.total_tokens}


_STREAM_TOP = text("""
SELECT t.sender_id, u.display_name, t.total FROM (
    SELECT sender_id, sum(amount) AS total, max(id) AS last_id FROM tips WHERE stream_id = :s GROUP BY sender_id
    ORDER BY total DESC, last_id LIMIT :n) t
  JOIN users u ON u.id = t.sender_id
 ORDER BY t.total DESC, t.last_id""")

_CREATOR_TOP = text("""
SELECT t.sender_id, u.display_name, t.total FROM (
    SELECT sender_id, sum(amount) AS total, max(id) AS last_id FROM tips
     WHERE creator_id = :c AND (CAST(:days AS int) IS NULL OR created_at >= now() - make_interval(days => :days))
     GROUP BY sender_id ORDER BY total DESC, last_id LIMIT :n) t
  JOIN users u ON u.id = t.sender_id
 ORDER BY t.total DESC, t.last_id""")


def stream_top(stream_id: int, limit: int = TOP_SIZE) -> list[Tipper]:
    """The stream's top `limit` tippers, biggest total first (ties: who got there first)."""
    rows = db.session.execute(_STREAM_TOP, {"s": stream_id, "n": limit})
    return [Tipper(uid, name, int(total)) for uid, name, total in rows]


def stream_top_for_viewer(user, stream_id) -> list[Tipper]:
    """`stream_top` for someone who may watch the stream. Raises NotFound
    (stream_not_found), Forbidden (no_access)."""
    stream = get_stream(stream_id)
    if not can_view(user, stream):
        raise Forbidden("You don't have access to this stream.", "no_access")
    return stream_top(stream.id)


def creator_top(creator_id, range_, limit: int = TOP_SIZE) -> list[Tipper]:
    """The creator's top `limit` tippers over `range_` ("30d" or "all"), as `stream_top`.
    Raises InvalidValue (range), NotFound (creator_not_found)."""
    range_ = validation.choice(range_, "range", RANGES, label="range")
    creator = db.session.get(User, creator_id) if validation.is_record_id(creator_id) else None
    if creator is None or not creator.is_creator:
        raise NotFound("No such creator.", "creator_not_found")
    rows = db.session.execute(_CREATOR_TOP, {"c": creator.id, "n": limit,
                                             "days": KING_DAYS if range_ == "30d" else None})
    return [Tipper(uid, name, int(total)) for uid, name, total in rows]


def king_of(creator_id: int) -> int | None:
    """The id of the creator's top tipper (gross tokens) over the last 30 days, or None.
    Ties go to whoever reached the total first. Read at most once a minute per process:
    every chat line and tip pop asks.

    One GROUP BY over the creator's tips of 30 days (`ix_tips_creator_id_id`): the
    dashboard's ranked rollups (`rollup_pair_window`) would read a few rows instead, but
    they rank creator shares of tips and call blocks net of refunds, not gross tips, so
    the king would not be the top *tipper*. Once a minute per process it stays cheap
    up to creators with some hundred thousand tips a month."""
    now = time.monotonic()
    cached = _kings.get(creator_id)
    if cached and cached[0] > now:
        return cached[1]
    king = db.session.scalar(text(
        "SELECT sender_id FROM tips WHERE creator_id = :c AND created_at >= now() - make_interval(days => :d) "
        "GROUP BY sender_id ORDER BY sum(amount) DESC, max(id) LIMIT 1"), {"c": creator_id, "d": KING_DAYS})
    with _kings_lock:
        _kings[creator_id] = (now + KING_CACHE_SECONDS, king)
    return king


def is_king(creator_id: int | None, user_id: int | None) -> bool:
    """True when `user_id` is the creator's king (the crown in tip pops, chat, OBS)."""
    return bool(creator_id and user_id) and king_of(creator_id) == user_id


def forget_king(creator_id: int) -> None:
    """Read the creator's king afresh next time (the room refresh does, once per coalesced
    run: the board it publishes crowns whoever is king now, a first tipper included)."""
    with _kings_lock:
        _kings.pop(creator_id, None)


def forget_kings() -> None:
    """Drop the cached kings (tests, and after a refund changes who tipped most)."""
    with _kings_lock:
        _kings.clear()
