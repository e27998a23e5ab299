"""Payouts: a creator takes earned tokens out as money (DESIGN.md §11).

Design note
-----------
Money out has three steps, each its own transaction, so a crash between any
two loses nothing and pays nothing twice:

1. **Request** (`request_payout`, idempotent on the client's key): under the
   earnings account's row lock the available amount is computed and the tokens
   move at once, earnings → `payouts_in_transit` (transfer ``payout:<id>``),
   with the payout row (`requested`) in the same commit.
2. **Clearing.** With `PAYOUT_REQUIRES_APPROVAL` an operator approves
   (`approve`) or rejects it (`reject`: tokens back, ``payout:<id>:return``);
   without, the worker clears it itself. Either way the payout is `approved`
   and committed *before* any money is sent: from then on a transfer may exist
   at Stripe, so nothing may reject it any more (only `requested` payouts can
   be decided).
3. **Sending** (`pay`, the worker's job and its cron sweep): with the payout's
   row locked, ask the provider for the transfer — Stripe's idempotency key is
   the payout id, so a retry after a crash gets the transfer already made —
   then mark it `paid` and move the tokens in_transit → `payouts_paid`
   (``payout:<id>:paid``) in one commit. Stripe refusing it → `failed` with its
   reason and the tokens back to earnings. Stripe unreachable → nothing
   changes; the sweep tries again.

Earnings become available `PAYOUT_HOLD_DAYS` after they were earned, so a
chargeback lands while they are still held (`balance`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import select, text

from app import clock, idempotency, ledger, validation
from app.auth.models import User
from app.auth.service import require_creator, require_operator
from app.errors import Conflict, InsufficientFunds, NotFound
from app.extensions import db
from app.payments.providers import ProviderError, format_money, payout_cents, provider
from app.payouts.models import Payout, PayoutAccount

log = logging.getLogger(__name__)

SCOPE = "payouts.request"
# More than any balance; keeps every amount (and its cents) far inside a BIGINT.
MAX_PAYOUT_TOKENS = 10**12
HISTORY_LIMIT = 100
QUEUE_LIMIT = 100
SWEEP_BATCH = 100
REASON_MAX = 255
CREATORS_ONLY = "Payouts are for creators. Become a creator from your account page."


# ---- the connected account -------------------------------------------------------------------


class AccountNotReady(Conflict):
    code = "payout_account_not_ready"


def account_of(user) -> PayoutAccount | None:
    return db.session.get(PayoutAccount, user.id)


def account_state(user) -> dict:
    """`{status: "none"|"pending"|"ready", payoutsEnabled}` for a creator (else `Forbidden`)."""
    require_creator(user, CREATORS_ONLY)
    account = account_of(user)
    if account is None:
        return {"status": "none", "payoutsEnabled": False}
    return {"status": "ready" if account.payouts_enabled else "pending", "payoutsEnabled": account.payouts_enabled}


def start_onboarding(user, *, refresh_url: str, return_url: str) -> str:
    """The URL where the creator sets up (or finishes setting up) payouts; commits.

    Creates the creator's connected account once: concurrent requests queue on a
    per-creator lock, and the provider's own idempotency key (the user id) makes
    a retry after a crash find the account it already made. The demo provider's
    account is ready at once. Raises `Forbidden` for fans, `ProviderError` when
    Stripe refuses or cannot be reached (nothing is stored then)."""
    require_creator(user, CREATORS_ONLY)
    payments = provider()
    try:
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                           {"k": f"payout_account:{user.id}"})
        account = db.session.execute(select(PayoutAccount).where(PayoutAccount.user_id == user.id)
                                     .execution_options(populate_existing=True)).scalar_one_or_none()
        if account is None:
            account = PayoutAccount(user_id=user.id, stripe_account_id=payments.create_account(user))
            if payments.test_mode:  # the demo provider has no onboarding to wait for
                account.payouts_enabled = account.details_submitted = True
                account.updated_at = clock.now()
            db.session.add(account)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return payments.onboarding_url(account.stripe_account_id, refresh_url=refresh_url, return_url=return_url)


def record_account_state(stripe_account_id: str, *, payouts_enabled: bool, details_submitted: bool,
                         as_of: datetime) -> str:
    """Record what Stripe says about a connected account as of `as_of` (the event's
    time); does not commit (the webhook transport does). An older state than the
    one recorded is ignored ("stale"): events arrive late and out of order.
    Raises `NotFound` for an account that is not ours."""
    account = db.session.execute(select(PayoutAccount).where(PayoutAccount.stripe_account_id == stripe_account_id)
                                 .with_for_update().execution_options(populate_existing=True)).scalar_one_or_none()
    if account is None:
        raise NotFound("No payout account has this Stripe id.", "unknown_account")
    if account.updated_at is not None and as_of < account.updated_at:
        return "stale"
    account.payouts_enabled, account.details_submitted, account.updated_at = payouts_enabled, details_submitted, as_of
    return "handled"


# ---- what is available -----------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """Held tokens and the UTC day they become available."""
    on: date
    tokens: int


@dataclass
class Balance:
    """A creator's earnings: `available` to pay out now, `held` until each release."""
    earnings: int
    available: int
    held: int
    releases: list[Release] = field(default_factory=list)


def _earnings_account(user_id: int) -> ledger.Account:
    return ledger.account_for(user_id, "earnings") or ledger.open_account("earnings", user_id)


# Earned in the hold window, per UTC day. A payout that failed or was rejected gave back
# tokens that were available before: they are not held again.
_HELD_BY_DAY = text("""
    SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day, sum(e.amount) AS tokens
      FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
     WHERE e.account_id = :a AND e.amount > 0 AND e.created_at > :since AND t.kind <> :returned
     GROUP BY 1 ORDER BY 1""")


def _balance(earnings: ledger.Account, total: int) -> Balance:
    """Split an earnings balance `total` into available and held. Read `total` first:
    an earning committed in between then counts as held, never as available."""
    hold = timedelta(days=current_app.config["PAYOUT_HOLD_DAYS"])
    rows = db.session.execute(_HELD_BY_DAY, {"a": earnings.id, "since": clock.now() - hold,
                                             "returned": ledger.TransferKind.PAYOUT_RETURN}).all()
    held = min(sum(int(r.tokens) for r in rows), max(total, 0))
    # Capped at the balance (a clawback took some back): as the oldest release only
    # brings the amount still held down to the balance, the capped tokens are the
    # latest ones to come free.
    releases, left = [], held
    for row in reversed(rows):
        if left <= 0:
            break
        releases.append(Release(row.day + hold, min(int(row.tokens), left)))
        left -= releases[-1].tokens
    return Balance(total, max(0, total - held), held, releases[::-1])


def balance(user) -> Balance:
    """The creator's earnings, available and held (with the day each held amount frees up)."""
    earnings = _earnings_account(user.id)
    return _balance(earnings, ledger.balance_of(earnings))


# ---- requesting a payout ---------------------------------------------------------------------


@dataclass
class PayoutResult:
    payout: Payout
    replayed: bool


def payout_amount(raw, *, from_form: bool = False) -> int:
    """A payout's amount: whole tokens, at least `PAYOUT_MINIMUM_TOKENS` (`InvalidValue` on amountTokens)."""
    return validation.token_amount(raw, "amountTokens", minimum=current_app.config["PAYOUT_MINIMUM_TOKENS"],
                                   maximum=MAX_PAYOUT_TOKENS, from_form=from_form)


def request_payout(user, raw_amount, key: str, *, from_form: bool = False) -> PayoutResult:
    """Take `raw_amount` tokens of the creator's available earnings out; commits, then
    queues the transfer (unless an operator must approve it first).

    Raises, moving nothing: `Forbidden` (not a creator), `InvalidValue` (amount not
    a whole number ≥ the minimum), `AccountNotReady` (409: payouts not set up),
    `InsufficientFunds` (402, `required` = the shortfall) and `Conflict` (the key
    was used for another amount). A replay of `key` returns the first payout."""
    require_creator(user, CREATORS_ONLY)
    amount = payout_amount(raw_amount, from_form=from_form)
    try:
        result = _request_payout(user, amount, key)
    except Exception:
        db.session.rollback()  # a refused request leaves nothing behind, not even its key
        raise
    if not result.replayed and not current_app.config["PAYOUT_REQUIRES_APPROVAL"]:
        _queue_sending(result.payout.id)
    return result


def _request_payout(user, amount: int, key: str) -> PayoutResult:
    claim = idempotency.claim(user.id, key, SCOPE, {"amountTokens": amount}, "payouts_id_seq")
    if not claim.fresh:
        db.session.rollback()
        return PayoutResult(db.session.get(Payout, claim.resource_id), replayed=True)
    account = account_of(user)
    if account is None or not account.payouts_enabled:
        raise AccountNotReady("Set up payouts first: your payout account is not ready yet.")
    earnings = _earnings_account(user.id)
    # Nobody else debits the earnings until this commits (a clawback waits), so what is
    # available now is still there when the transfer posts.
    available = _balance(earnings, ledger.lock_account(earnings)).available
    if amount > available:
        raise InsufficientFunds(amount - available, f"Only {available:,} tokens are available to pay out.")
    moved = ledger.transfer(ledger.TransferKind.PAYOUT, f"payout:{claim.resource_id}",
                            [ledger.Leg(earnings, -amount), ledger.Leg(ledger.system_account("payouts_in_transit"),
                                                                       amount)],
                            {"payoutId": claim.resource_id})
    payout = Payout(id=claim.resource_id, user_id=user.id, amount_tokens=amount, amount_cents=payout_cents(amount),
                    currency=current_app.config["CURRENCY"], status="requested",
                    stripe_account_id=account.stripe_account_id, transfer_id=moved.transfer_id)
    db.session.add(payout)
    db.session.commit()
    return PayoutResult(payout, replayed=False)


def _queue_sending(payout_id: int) -> None:
    from app.jobs import enqueue
    from app.payouts.jobs import pay_payout
    enqueue(pay_payout, payout_id)


def history(user, limit: int = HISTORY_LIMIT) -> list[Payout]:
    """The creator's payouts, newest first."""
    return list(db.session.scalars(select(Payout).where(Payout.user_id == user.id)
                                   .order_by(Payout.id.desc()).limit(limit)))


def overview(user) -> dict:
    """`GET /api/payouts`: `{available, held, minimum, payouts}` — the newest `HISTORY_LIMIT`
    payouts first (creators only)."""
    require_creator(user, CREATORS_ONLY)
    found = balance(user)
    return {"available": found.available, "held": found.held,
            "minimum": current_app.config["PAYOUT_MINIMUM_TOKENS"], "payouts": [p.to_dict() for p in history(user)]}


# ---- sending it ------------------------------------------------------------------------------


def _locked(payout_id: int, *, skip_locked: bool = False) -> Payout | None:
    """The payout with its row locked until the transaction ends; None if unknown (or,
    with `skip_locked`, if someone else holds the lock: another worker is sending it)."""
    query = select(Payout).where(Payout.id == payout_id).with_for_update(skip_locked=skip_locked)
    return db.session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def _move(payout: Payout, kind: ledger.TransferKind, suffix: str, to: ledger.Account, extra: dict | None = None):
    in_transit = ledger.system_account("payouts_in_transit")
    ledger.transfer(kind, f"payout:{payout.id}:{suffix}",
                    [ledger.Leg(in_transit, -payout.amount_tokens), ledger.Leg(to, payout.amount_tokens)],
                    {"payoutId": payout.id, **(extra or {})})


def _give_back(payout: Payout, status: str, reason: str) -> None:
    """`failed` or `rejected` with `reason`: the tokens go back to the creator's earnings."""
    payout.status, payout.failure_reason = status, reason[:REASON_MAX]
    if status == "failed":
        payout.failed_at = clock.now()
    _move(payout, ledger.TransferKind.PAYOUT_RETURN, "return", _earnings_account(payout.user_id))


def pay(payout_id: int) -> str:
    """Send one payout; harmless to run twice or concurrently. Returns what happened:
    "paid", "failed" (Stripe refused: tokens back), "retry" (Stripe unreachable:
    unchanged), "busy" (another worker holds it), or the status that leaves
    nothing to do ("requested" awaiting approval, "paid", "failed", "rejected")."""
    try:
        return _pay(payout_id)
    except Exception:
        db.session.rollback()
        raise


def _pay(payout_id: int) -> str:
    payout = _locked(payout_id, skip_locked=True)
    if payout is None:
        db.session.rollback()
        return "busy"
    if payout.status == "requested" and not current_app.config["PAYOUT_REQUIRES_APPROVAL"]:
        # Cleared (and committed) before any money moves: a payout Stripe may have
        # paid can no longer be rejected.
        payout.status, payout.decided_at = "approved", clock.now()
        db.session.commit()
        payout = _locked(payout_id, skip_locked=True)
        if payout is None:
            db.session.rollback()
            return "busy"
    if payout.status != "approved":
        db.session.rollback()
        return payout.status
    # The row stays locked while Stripe answers: a second worker skips it, an operator waits.
    try:
        transfer_id = provider().transfer(payout, destination=payout.stripe_account_id)
    except ProviderError as err:
        if not err.declined:
            db.session.rollback()
            log.warning("payout %s: provider unreachable, will retry: %s", payout_id, err.message)
            return "retry"
        _give_back(payout, "failed", err.message)
        db.session.commit()
        log.warning("payout %s failed: %s", payout_id, err.message)
        return "failed"
    payout.status, payout.stripe_transfer_id, payout.paid_at = "paid", transfer_id, clock.now()
    _move(payout, ledger.TransferKind.PAYOUT_PAID, "paid", ledger.system_account("payouts_paid"),
          {"stripeTransferId": transfer_id})
    db.session.commit()
    return "paid"


def unsent(after: int = 0, limit: int | None = None) -> list[int]:
    """Ids (above `after`, at most `limit` (`SWEEP_BATCH`), ascending) of payouts cleared to send (or to
    clear, without approval) with no transfer recorded: the ones whose job was lost,
    crashed or met a Stripe outage."""
    statuses = ["approved"] if current_app.config["PAYOUT_REQUIRES_APPROVAL"] else ["approved", "requested"]
    return list(db.session.scalars(select(Payout.id).where(Payout.status.in_(statuses), Payout.id > after,
                                                           Payout.stripe_transfer_id.is_(None))
                                   .order_by(Payout.id).limit(limit or SWEEP_BATCH)))


# ---- the operators' queue --------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedPayout:
    payout: Payout
    creator_name: str


def approval_queue(user, limit: int = QUEUE_LIMIT) -> list[QueuedPayout]:
    """Payouts awaiting a decision, oldest first, with their creator's name (operators only)."""
    require_operator(user, "Deciding payouts")
    rows = db.session.execute(select(Payout, User.display_name).join(User, User.id == Payout.user_id)
                              .where(Payout.status == "requested").order_by(Payout.id).limit(limit)).all()
    return [QueuedPayout(p, name) for p, name in rows]


def reject_reason(raw) -> str:
    return validation.text_value(raw, "reason", label="Reason", max_length=REASON_MAX)


def _decide(user, payout_id: int) -> Payout:
    """The `requested` payout locked for a decision (waiting for a worker sending it)."""
    payout = _locked(payout_id)
    if payout is None:
        raise NotFound("No such payout.", "payout_not_found")
    if payout.status != "requested":
        raise Conflict(f"This payout was already decided: it is {payout.status}.", "payout_already_decided")
    payout.decided_by, payout.decided_at = user.id, clock.now()
    return payout


def approve(user, payout_id: int) -> Payout:
    """An operator clears a requested payout for sending; commits and queues it.
    Raises `Forbidden` (not an operator), `NotFound`, `Conflict` (not `requested`)."""
    require_operator(user, "Deciding payouts")
    try:
        payout = _decide(user, payout_id)
        payout.status = "approved"
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _queue_sending(payout.id)
    return payout


def reject(user, payout_id: int, raw_reason) -> Payout:
    """An operator turns a requested payout down with a reason: the tokens go back to
    the creator's earnings; commits. Raises `Forbidden`, `InvalidValue` (reason),
    `NotFound`, `Conflict` (not `requested`)."""
    require_operator(user, "Deciding payouts")
    reason = reject_reason(raw_reason)
    try:
        payout = _decide(user, payout_id)
        _give_back(payout, "rejected", reason)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return payout


def payout_value(tokens: int) -> str:
    """What `tokens` pay out, as people read it ("20.00 USD")."""
    return format_money(payout_cents(tokens), current_app.config["CURRENCY"])
