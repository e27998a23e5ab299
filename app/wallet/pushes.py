"""What the wallet publishes after commit, to every tab the user has open (their
`/ws/me`): a new balance (a creator's new earnings), and a purchase's row when it changes (credited,
expired, failed). Features that move a user's tokens call these once their
transaction has committed."""
from __future__ import annotations

import logging

from flask import current_app
from redis import RedisError

from app.realtime import fragments
from app.realtime.bus import Claim, publish_many, user_channel
from app.redis_client import get_redis

log = logging.getLogger(__name__)
# How long a queued earnings refresh holds its creator's claim at most: should the job be
# lost, the next change queues a new one after this.
_EARNINGS_CLAIM_SECONDS = 60


def balance_changed(user_id: int, balance: int) -> None:
    """The user's new wallet balance, for every tab they have open."""
    publish_many(balance_messages(user_id, balance))


def balance_messages(user_id: int, balance: int) -> list[tuple[str, str]]:
    """`balance_changed`'s message, for callers that publish many in one round trip."""
    return [(user_channel(user_id), fragments.render("wallet/_balance_push.html", balance=balance))]


def earnings_changed(creator_ids) -> None:
    """Tokens reached these creators' earnings (committed): queue one refresh of their nav
    pill on every tab they have open (`app.wallet.jobs.push_earnings`).

    Earnings are a derived account: the figure is a sum (rollups plus the entries since),
    too dear to read after every tip of a storm. So each creator has at most one refresh
    queued: the first change claims `earnings-push:<id>` in Redis and queues the job,
    later ones find the claim and add nothing. The job drops the claims before it reads,
    so a change committed before its read is in the figure, and one after it queues the
    next refresh. Redis down: no refresh (the next page load or reconnect shows it)."""
    ids = sorted(set(creator_ids))
    if not ids:
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        for creator_id in ids:
            pipe.set(earnings_claim_key(creator_id), 1, nx=True, ex=_EARNINGS_CLAIM_SECONDS)
        claimed = [creator_id for creator_id, won in zip(ids, pipe.execute(), strict=True) if won]
    except RedisError as exc:
        log.warning("wallet: no earnings refresh for %d creator(s) (%s)", len(ids), exc)
        return
    earnings_claimed(claimed)


def earnings_claim(creator_id: int) -> Claim:
    """`earnings_changed`'s claim for one creator, for a caller that takes it in its own
    publish's round trip (a tip: `bus.count_publish_and_claim`); whoever wins it calls
    `earnings_claimed`."""
    return Claim(earnings_claim_key(creator_id), _EARNINGS_CLAIM_SECONDS)


def earnings_claimed(creator_ids: list[int]) -> None:
    """The caller won these creators' claims: queue their refresh (nothing for none)."""
    if creator_ids:
        from app.jobs import enqueue
        from app.wallet.jobs import push_earnings
        enqueue(push_earnings, creator_ids)


def earnings_claim_key(creator_id: int) -> str:
    return f"{current_app.config['REDIS_PREFIX']}earnings-push:{creator_id}"


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
