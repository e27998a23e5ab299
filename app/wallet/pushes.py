"""What the wallet publishes after commit, to every tab the user has open (their
`/ws/me`): a new balance (a creator's new earnings), and a purchase's row when it changes (credited,
expired, failed). Features that move a user's tokens call these once their
transaction has committed."""
from __future__ import annotations

from app.realtime import fragments
from app.realtime.bus import publish_many, user_channel


def balance_changed(user_id: int, balance: int) -> None:
    """The user's new wallet balance, for every tab they have open."""
    publish_many(balance_messages(user_id, balance))


def balance_messages(user_id: int, balance: int) -> list[tuple[str, str]]:
    """`balance_changed`'s message, for callers that publish many in one round trip."""
    return [(user_channel(user_id), fragments.render("wallet/_balance_push.html", balance=balance))]


def earnings_changed(creator_id: int, earnings: int) -> None:
    """The creator's new earnings (their nav pill), for every tab they have open."""
    publish_many(earnings_messages(creator_id, earnings))


def earnings_messages(creator_id: int, earnings: int) -> list[tuple[str, str]]:
    """`earnings_changed`'s message, for callers that publish many in one round trip."""
    return [(user_channel(creator_id), fragments.render("wallet/_earnings_push.html", earnings=earnings))]


def purchase_changed(purchase, balance: int | None = None) -> None:
    """The purchase's row as it is now (a /wallet page swaps it in place) and, when
    it was just credited, the buyer's new `balance` (the nav chip, and the big
    balance on /wallet): one message, one round trip."""
    publish_many([(user_channel(purchase.user_id), purchase_message(purchase, balance))])


def purchase_message(purchase, balance: int | None = None) -> str:
    """`purchase_changed`'s message (also sent on a /ws/me reconnect, see live.py)."""
    return fragments.render("wallet/_wallet_push.html", purchases=[purchase], balance=balance)
