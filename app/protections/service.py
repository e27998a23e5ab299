"""Fan protections (DESIGN.md §12): a daily spending cap a fan sets for themselves, and
a confirmation for large tips. Both are checked here, in the one service path every
tip, ticket and call request takes, whether it came from a form or the JSON API.

Spending cap
------------
"Spent today" is what the fan's wallet paid since midnight UTC (`clock.now()`'s day)
for tips, tickets and call blocks, read from the ledger: the sum of the wallet's debits
of those kinds. Refunds (a canceled show, a refunded call block) don't give the room
back: the cap counts what left the wallet, so it is never reached twice in one day.

A tip or ticket beyond the cap is refused (403 `spend_limit_reached`). To hold under
concurrency, `hold_within_limit` locks the fan's wallet row (the row every debit of
that wallet locks) before summing, inside the payment's transaction: two payments of
one capped fan run one after the other, each seeing the other's entries. A fan with no
cap takes no lock and pays no query.

A call request needs the cap to allow its first two blocks (`check_allows`, no lock:
a request moves no tokens). A running call is not stopped by the cap: the fan agreed
to a per-minute price and ends the call when they like; its blocks count towards the
day, so no further tip, ticket or call gets through once the cap is reached.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from flask import current_app
from sqlalchemy import select, text

from app import clock, ledger, validation
from app.auth.models import User
from app.errors import Conflict, Forbidden, InsufficientFunds, InvalidValue
from app.extensions import db

LIMIT_MAX = 10_000_000
SPENDING_KINDS = [ledger.TransferKind.TIP.value, ledger.TransferKind.TICKET.value,
                  ledger.TransferKind.CALL_BLOCK.value]

_SPENT_SINCE = text(
    "SELECT coalesce(-sum(e.amount), 0) FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id "
    "WHERE e.account_id = :wallet AND e.amount < 0 AND e.created_at >= :since AND t.kind = ANY(:kinds)")


def day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of `now`'s day (the cap's day)."""
    now = (now or clock.now()).astimezone(timezone.utc)
    return datetime.combine(now.date(), time(0), tzinfo=timezone.utc)


def next_reset(now: datetime | None = None) -> datetime:
    return day_start(now) + timedelta(days=1)


def spent_today(user_id: int) -> int:
    """Tokens the user's wallet paid today (UTC) for tips, tickets and call blocks."""
    wallet = ledger.account_for(user_id, "wallet")
    if wallet is None:
        return 0
    return int(db.session.execute(_SPENT_SINCE, {"wallet": wallet.id, "since": day_start(),
                                                 "kinds": SPENDING_KINDS}).scalar_one())


def limits_of(user) -> dict:
    """`{dailySpendTokens, spentTodayTokens}` (the cap None when the fan set none)."""
    return {"dailySpendTokens": user.daily_spend_limit_tokens, "spentTodayTokens": spent_today(user.id)}


def daily_limit_value(raw, *, from_form: bool = False) -> int | None:
    """A cap as sent: an integer 1..LIMIT_MAX, or None (JSON null, an empty form field) to clear it."""
    if raw is None or (from_form and isinstance(raw, str) and not raw.strip()):
        return None
    return validation.token_amount(raw, "dailySpendTokens", maximum=LIMIT_MAX, from_form=from_form)


def set_daily_limit(user, raw, *, from_form: bool = False) -> dict:
    """Set (or with None clear) the user's own daily spending cap; commits; returns `limits_of`.
    Raises `InvalidValue` on `dailySpendTokens`. Takes effect at once, lowering or raising."""
    value = daily_limit_value(raw, from_form=from_form)
    user.daily_spend_limit_tokens = value
    db.session.commit()
    return limits_of(user)


def limit_reached(limit: int, spent: int, amount: int, what: str = "This payment") -> Forbidden:
    left = max(limit - spent, 0)
    return Forbidden(
        f"{what} of {amount:,} tokens would pass your daily spending limit of {limit:,} tokens: "
        f"{left:,} tokens left today. The limit resets at midnight UTC.",
        "spend_limit_reached", field="amountTokens", limitTokens=limit, spentTodayTokens=spent,
        remainingTokens=left)


def _cap_of(user_id: int) -> int | None:
    return db.session.scalar(select(User.daily_spend_limit_tokens).where(User.id == user_id))


def hold_within_limit(user, amount: int, what: str = "This payment") -> None:
    """Inside the payment's transaction, before its ledger statement: when the user has a
    cap, lock their wallet row, then refuse (`Forbidden` spend_limit_reached, with
    `limitTokens`, `spentTodayTokens`, `remainingTokens`) unless today's spending plus
    `amount` stays within it. Costs nothing for a user without a cap."""
    if user.daily_spend_limit_tokens is None:
        return
    wallet = ledger.account_for(user.id, "wallet")
    if wallet is None:
        return  # no wallet, nothing to pay with: the ledger refuses the payment
    db.session.execute(text("SELECT 1 FROM ledger_accounts WHERE id = :id FOR UPDATE"), {"id": wallet.id})
    # Read after the lock (a new statement, a new snapshot): the cap as it is now and every
    # payment that committed while this one waited.
    cap = _cap_of(user.id)
    if cap is None:
        return
    spent = spent_today(user.id)
    if spent + amount > cap:
        raise limit_reached(cap, spent, amount, what)


def check_allows(user, amount: int, what: str) -> None:
    """Refuse (`Forbidden` spend_limit_reached) when today's spending plus `amount` passes
    the user's cap; no lock (for a request that moves no tokens yet: a call)."""
    if user.daily_spend_limit_tokens is None:
        return
    spent = spent_today(user.id)
    if spent + amount > user.daily_spend_limit_tokens:
        raise limit_reached(user.daily_spend_limit_tokens, spent, amount, what)


def confirm_threshold() -> int:
    return current_app.config["CONFIRM_TIP_OVER_TOKENS"]


def confirm_value(raw, *, from_form: bool = False) -> bool:
    """The request's `confirm`: JSON true/false (or absent); a form's "1"/"true"."""
    if from_form:
        return raw in ("1", "true", "on")
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise InvalidValue("confirm must be true or false.", field="confirm")
    return raw


def require_confirmation(user, amount: int, confirmed: bool) -> None:
    """A tip over `CONFIRM_TIP_OVER_TOKENS` needs the fan's confirmation: without it,
    `Conflict` confirmation_required (with `amountTokens`, `thresholdTokens`). A tip the
    wallet can't pay is told so first (`InsufficientFunds`): no point confirming it."""
    threshold = confirm_threshold()
    if confirmed or amount <= threshold:
        return
    wallet = ledger.account_for(user.id, "wallet")
    balance = ledger.balance_of(wallet) if wallet else 0
    if balance < amount:
        raise InsufficientFunds(required=amount - balance)
    raise Conflict(f"Tips over {threshold:,} tokens need your confirmation: send {amount:,} tokens?",
                   "confirmation_required", field="amountTokens", amountTokens=amount, thresholdTokens=threshold)
