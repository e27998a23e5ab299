"""What notifications publish after commit: the bell's unread count, to every tab
each user has open (their `/ws/me`), for many users in few round trips to Redis."""
from __future__ import annotations

from app.realtime import fragments
from app.realtime.bus import publish_many, user_channel

# Messages per round trip: a fan-out to 5,000 followers is five script calls, none huge.
BATCH = 1000


def bells_changed(unread_by_user: dict[int, int]) -> None:
    """Each user's new unread count, for the bell in every tab they have open."""
    messages = [(user_channel(user_id), bell_message(unread)) for user_id, unread in unread_by_user.items()]
    for start in range(0, len(messages), BATCH):
        publish_many(messages[start:start + BATCH])


def bell_message(unread: int) -> str:
    """The bell's badge, swapped in by id (also sent on a `/ws/me` reconnect, see live.py)."""
    return fragments.render("notifications/_bell_badge.html", unread=unread, oob=True)
