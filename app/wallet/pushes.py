"""What the wallet publishes after commit: a user's new balance, to every tab
they have open (their `/ws/me`). Features that move a user's tokens call these
once their transaction has committed."""
from __future__ import annotations

from app.realtime import fragments
from app.realtime.bus import publish_many, user_channel


def balance_changed(user_id: int, balance: int) -> None:
    """The user's new wallet balance, for every tab they have open."""
    publish_many(balance_messages(user_id, balance))


def balance_messages(user_id: int, balance: int) -> list[tuple[str, str]]:
    """`balance_changed`'s message, for callers that publish many in one round trip."""
    return [(user_channel(user_id), fragments.render("wallet/_balance_push.html", balance=balance))]
