"""A creator's alert controls (DESIGN.md §12): what of a tip pops up, and how.

* `alert_min_tokens`: tips under it move money and appear in lists, but don't pop up;
* `profanity_filter`: profanity in messages is masked wherever the room or OBS shows
  them (stored raw): `shown_text`;
* `require_approval`: the OBS source shows a tip's message only once the creator
  approved it (`tips.message_status`);
* `alert_sound`: the OBS source's sound, one of `SOUNDS` (None: silent).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import text

from app.extensions import db


@dataclass(frozen=True)
class AlertSettings:
    min_tokens: int = 0
    profanity_filter: bool = False
    require_approval: bool = False
    sound: str | None = None


def settings_of(creator_id: int) -> AlertSettings:
    """The creator's alert controls (defaults for an unknown id)."""
    row = db.session.execute(
        text("SELECT alert_min_tokens, profanity_filter, require_approval, alert_sound FROM users WHERE id = :id"),
        {"id": creator_id}).one_or_none()
    return AlertSettings(*row) if row else AlertSettings()


_filter = None
_filter_lock = threading.Lock()


def _profanity():
    """glin-profanity's English filter, built once per process (loading its word list
    takes a while); it keeps no state between checks."""
    global _filter
    if _filter is None:
        with _filter_lock:
            if _filter is None:
                from glin_profanity import Filter
                _filter = Filter({"languages": ["english"], "replace_with": "***"})
    return _filter


def mask_profanity(value: str) -> str:
    """`value` with each profane word replaced by "***" (glin-profanity's list)."""
    if not value:
        return value
    result = _profanity().check_profanity(value)
    return result["processed_text"] if result.get("contains_profanity") else value


def shown_text(value: str, settings: AlertSettings) -> str:
    """How a message typed in the creator's room is shown: masked when their filter is on."""
    return mask_profanity(value) if settings.profanity_filter else value
