"""Leaderboards (DESIGN.md §12): a stream's top tippers, a creator's top fans, and the
creator's "king" — their top tipper over the last 30 days, crowned in chat and overlay.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import text

from app.extensions import db

KING_DAYS = 30
KING_CACHE_SECONDS = 60

_kings: dict[int, tuple[float, int | None]] = {}
_kings_lock = threading.Lock()


def king_of(creator_id: int) -> int | None:
    """The id of the creator's top tipper (gross tokens) over the last 30 days, or None.
    Ties go to whoever reached the total first (lowest first tip). Read at most once a
    minute per process: every chat line and tip pop asks."""
    now = time.monotonic()
    cached = _kings.get(creator_id)
    if cached and cached[0] > now:
        return cached[1]
    king = db.session.scalar(text(
        "SELECT sender_id FROM tips WHERE creator_id = :c AND created_at >= now() - make_interval(days => :d) "
        "GROUP BY sender_id ORDER BY sum(amount) DESC, min(id) LIMIT 1"), {"c": creator_id, "d": KING_DAYS})
    with _kings_lock:
        _kings[creator_id] = (now + KING_CACHE_SECONDS, king)
    return king


def forget_kings() -> None:
    """Drop the cached kings (tests, and after a refund changes who tipped most)."""
    with _kings_lock:
        _kings.clear()
