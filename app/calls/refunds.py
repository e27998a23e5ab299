"""Refunds of call blocks (DESIGN.md §11; issue 15's "refunds for failed calls").

The automatic rule
------------------
Block 0 of a call is given back, once, when the call's first block is over —
the call ended, or its *active* time reached `block_seconds` (block 1 started)
— and both parties' media had not connected while block 0 ran. Two ways in:

* `media_connected_at` is NULL (the media never connected while the call ran):
  the worker's cron finds such calls (`refund_unconnected_calls`, the SQL in
  `_FIRST_BLOCK_FAILED`) and refunds each in its own short transaction. Calls
  that ended more than `AUTO_REFUND_WINDOW` ago are left to the operator (so a
  refund the creator's earnings can't cover is not retried forever);
* the media connects for the first time after block 1 started: the presence
  change that notices it refunds at once, in its own transaction
  (`refund_late_media`, called by `service.presence_changed`).

Active time, not wall time: paused time is not billed, so a call paused for
presence (nobody's media up yet) whose media connects before its first
`block_seconds` of billed time ran out got what block 0 paid for.

Mechanics
---------
`_refund` is the one place tokens move, for the rule and for operators
(`refund_blocks`, from /platform and `POST /api/platform/calls/<id>/refund`).
Locks: the call's row (`locked_call`), then the fan's wallet and debt
(`ledger.lock_holder`) — the meter too locks calls before wallets — then the
ledger locks the creator's earnings and the platform's fees it debits. Per
block k, the transfer `call:<id>:refund:block:<k>` (CALL_REFUND) reverses the
block's payment: the fan is credited (`ledger.holder_credit`: their debt is
repaid first), the creator's earnings and the platform's fees give back the
shares the block paid them (the split recorded on its `block_charged` event);
a `block_refunded` event (unique per call and block) puts it on both parties'
receipts. A creator whose earnings no longer hold their share (paid out) makes
the refund a 409 `refund_not_covered` with nothing moved.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, text

from app import clock, idempotency, ledger, validation
from app.auth.models import User
from app.auth.service import require_operator
from app.calls import pushes
from app.calls.models import BLOCK_RECEIPTS, BillingEvent, Call, locked_call
from app.errors import Conflict, InsufficientFunds, InvalidValue, NotFound
from app.extensions import db
from app.ledger.models import LedgerTransfer
from app.wallet.pushes import balance_changed

log = logging.getLogger(__name__)

AUTO_REFUND_WINDOW = timedelta(days=7)  # ended calls older than this are the operator's to refund
SWEEP_BATCH = 500  # calls a sweep refunds at most (the next tick takes the rest)
REFUND_SCOPE = "call_refund"  # the operator's idempotency keys
MAX_BLOCKS = 10_000  # block numbers one refund request may name
BLOCK_MAX = 2**31 - 1  # billing_events.block_index is an INTEGER
NEVER = "media_never_connected"


@dataclass
class Moved:
    """What `_refund` gave back: the blocks, and the fan's wallet balance after (None
    when the wallet didn't change: nothing refunded, or all of it repaid debt)."""
    blocks: list[int]
    balance: int | None = None


@dataclass
class Refund:
    """An operator's refund request's answer: the call, and the blocks this request refunded."""
    call: Call
    refunded: list[int]


# ---- who may, and which blocks -------------------------------------------------------------------

def call_for_operator(operator, call_id) -> Call:
    """Any call, for an operator (`Forbidden` for anyone else, `NotFound` for an unknown id)."""
    require_operator(operator, "Refunding calls")
    call = db.session.get(Call, call_id) if validation.is_record_id(call_id) else None
    if call is None:
        raise NotFound("No such call.", "call_not_found")
    return call


def block_numbers(value) -> list[int] | None:
    """A refund request's `blocks`: None (every charged block not refunded yet) or a
    non-empty list of block indexes (0 = the first block, as the receipts' blockIndex),
    returned sorted without repeats. `InvalidValue` for anything else."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_BLOCKS:
        raise InvalidValue(f"blocks must list 1 to {MAX_BLOCKS:,} block indexes, or be left out to refund "
                           "every charged block.", field="blocks")
    if any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= BLOCK_MAX for k in value):
        raise InvalidValue("Each block is a whole number: its index, 0 for the call's first block.",
                           field="blocks")
    return sorted(set(value))


def refundable(call: Call, blocks: list[int] | None) -> list[BillingEvent]:
    """The `block_charged` events of `blocks` (None: all) that moved tokens and are not
    refunded yet, in block order. `InvalidValue` (invalid_block) when `blocks` names a
    block that was never charged or cost nothing."""
    events = db.session.scalars(select(BillingEvent).where(
        BillingEvent.call_id == call.id, BillingEvent.type.in_(BLOCK_RECEIPTS))).all()
    charged = {e.block_index: e for e in events if e.type == "block_charged" and e.amount > 0}
    done = {e.block_index for e in events if e.type == "block_refunded"}
    if blocks is not None:
        unknown = [k for k in blocks if k not in charged]
        if unknown:
            listed = ", ".join(str(k) for k in unknown[:10]) + (", …" if len(unknown) > 10 else "")
            raise InvalidValue(f"Only charged blocks can be refunded: call #{call.id} paid nothing for block "
                               f"index {listed}.", "invalid_block", field="blocks")
    return [charged[k] for k in sorted(charged if blocks is None else blocks) if k not in done]


# ---- moving the tokens -------------------------------------------------------------------------------

def _refund(call: Call, charges: list[BillingEvent], reason: str, request_id: int | None = None) -> Moved:
    """Give back these `block_charged` events' blocks of a call whose row the caller locked,
    in the caller's transaction (the module note). Raises `Conflict` (refund_not_covered)
    when the creator's earnings or the platform's fees no longer hold a block's share:
    the transfers posted before it are the caller's to roll back."""
    if not charges:
        return Moved([])
    holder = ledger.lock_holder(call.fan_id)
    earnings = ledger.account_for(call.creator_id, "earnings")
    fees = ledger.system_account("platform_fees")
    about = {"callId": call.id, "creatorId": call.creator_id, "reason": reason,
             "creatorName": db.session.get(User, call.creator_id).display_name}
    if request_id is not None:
        about["requestId"] = request_id  # so a replayed request can answer what it refunded
    moved = Moved([])
    for charge in charges:
        k = charge.block_index
        credit = ledger.holder_credit(holder, charge.amount)
        givers = (ledger.Leg(earnings, -charge.creator_share), ledger.Leg(fees, -charge.platform_share))
        try:
            result = ledger.transfer(ledger.TransferKind.CALL_REFUND, f"call:{call.id}:refund:block:{k}",
                                     credit + [leg for leg in givers if leg.amount], {**about, "blockIndex": k})
        except InsufficientFunds as short:
            raise Conflict(f"The creator's earnings no longer cover block {k + 1}'s refund ({short.required:,} "
                           "tokens short: they were paid out). Nothing was refunded.", "refund_not_covered",
                           blockIndex=k) from None
        holder = _credited(holder, credit)
        moved.blocks.append(k)
        moved.balance = result.balances.get(holder.wallet.id, moved.balance)
        db.session.add(BillingEvent(call_id=call.id, type="block_refunded", block_index=k, amount=charge.amount,
                                    creator_share=charge.creator_share, platform_share=charge.platform_share,
                                    reason=reason, transfer_id=result.transfer_id))
    db.session.flush()
    return moved


def _credited(holder: ledger.Holder, credit: list[ledger.Leg]) -> ledger.Holder:
    """The holder after `credit` (its `holder_credit` legs) posted: the next block's
    credit repays only what is still owed."""
    repaid = sum(leg.amount for leg in credit if leg.account == holder.debt)
    received = sum(leg.amount for leg in credit) - repaid
    return replace(holder, owed=holder.owed - repaid, wallet_balance=holder.wallet_balance + received)


def publish(call: Call, moved: Moved) -> None:
    """After commit: the fan's new balance, and both call pages' receipts."""
    if not moved.blocks:
        return
    pushes.receipts_changed(call)
    if moved.balance is not None:
        balance_changed(call.fan_id, moved.balance)


# ---- the automatic rule --------------------------------------------------------------------------------

def _refund_first_block(call: Call) -> Moved:
    """Block 0 back (reason media_never_connected) if it moved tokens and is not refunded
    yet; a refund the earnings can't cover is logged and skipped (it wrote nothing)."""
    first = [charge for charge in refundable(call, None) if charge.block_index == 0]
    try:
        return _refund(call, first, NEVER)
    except Conflict as err:
        log.warning("call %s: block 0 not refunded automatically: %s", call.id, err.message)
        return Moved([])


def refund_late_media(call: Call) -> Moved:
    """The media of a running call (locked by the caller, in its transaction) has just
    connected for the first time: if its first block was already over (block 1 started),
    block 0 comes back now. The caller commits, then `publish`es."""
    if call.blocks_charged < 2:
        return Moved([])
    return _refund_first_block(call)


# Calls whose block 0 moved tokens, is not refunded, and whose first block is over with
# no media ever connected: ended (within the window) or billed into block 1. Both
# EXISTS use the partial unique indexes on (call_id, block_index).
_FIRST_BLOCK_FAILED = (
    "SELECT c.id FROM calls c "
    "WHERE c.media_connected_at IS NULL AND c.accepted_at IS NOT NULL "
    "AND (c.status = 'ended' AND c.ended_at >= :since OR c.status IN ('active', 'paused') AND c.blocks_charged >= 2) "
    "AND EXISTS (SELECT 1 FROM billing_events b WHERE b.call_id = c.id AND b.type = 'block_charged' "
    "AND b.block_index = 0 AND b.amount > 0) "
    "AND NOT EXISTS (SELECT 1 FROM billing_events r WHERE r.call_id = c.id AND r.type = 'block_refunded' "
    "AND r.block_index = 0) "
    "AND c.id BETWEEN :first AND :last ORDER BY c.id LIMIT :limit")


def _failed_first_blocks(now: datetime, first: int = 1, last: int = validation.BIGINT_MAX,
                         limit: int = SWEEP_BATCH) -> list[int]:
    return list(db.session.scalars(text(_FIRST_BLOCK_FAILED), {
        "since": now - AUTO_REFUND_WINDOW, "first": first, "last": last, "limit": limit}))


def refund_unconnected_calls(at: datetime | None = None, limit: int = SWEEP_BATCH) -> list[int]:
    """The automatic rule's sweep (the worker's cron): give block 0 back to every call
    whose media never connected during its first block; returns the ids of the calls
    refunded now. One query finds them; each is then refunded in its own transaction
    after checking the rule again under its lock, so sweeps running at once (or twice)
    refund each block once. Pages hear of each refund as it commits."""
    now = at or clock.now()
    found = _failed_first_blocks(now, limit=limit)
    db.session.rollback()
    refunded = []
    for call_id in found:
        try:
            call = locked_call(call_id)
            # Asked again in a new snapshot now that the row is ours: another sweep may have been first.
            still = _failed_first_blocks(now, call_id, call_id) == [call_id]
            moved = _refund_first_block(call) if still else Moved([])
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        if moved.blocks:
            refunded.append(call_id)
            publish(call, moved)
    return refunded


# ---- operators -----------------------------------------------------------------------------------------

def refund_blocks(operator, call_id, blocks, key: str) -> Refund:
    """An operator gives back blocks of any call (`blocks`: block indexes, see
    `block_numbers`; None: every charged block not refunded yet). Commits, then
    publishes the fan's balance and both call pages' receipts.

    A block already refunded is skipped, so repeating a request moves nothing more
    (`refunded` is then []). Idempotent on the operator's `key`: a replay answers the
    first request's blocks; the key with other parameters is `Conflict`
    (idempotency_key_reused). Raises `Forbidden` (not an operator), `NotFound`,
    `InvalidValue` (bad or uncharged blocks) and `Conflict` (refund_not_covered),
    each with nothing moved.
    """
    call = call_for_operator(operator, call_id)
    blocks = block_numbers(blocks)
    try:
        claim = idempotency.claim(operator.id, key, REFUND_SCOPE, {"callId": call.id, "blocks": blocks},
                                  "billing_events_id_seq")
        call = locked_call(call.id)
        if claim.fresh:
            moved = _refund(call, refundable(call, blocks), "operator", claim.resource_id)
        else:
            moved = Moved(_refunded_by(call.id, claim.resource_id))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if claim.fresh:
        publish(call, moved)
    return Refund(call, moved.blocks)


def _refunded_by(call_id: int, request_id: int) -> list[int]:
    """The blocks the refund request `request_id` (its idempotency claim's id) gave back."""
    return list(db.session.scalars(
        select(BillingEvent.block_index).join(LedgerTransfer, LedgerTransfer.id == BillingEvent.transfer_id)
        .where(BillingEvent.call_id == call_id, BillingEvent.type == "block_refunded",
               LedgerTransfer.metadata_["requestId"].as_integer() == request_id)
        .order_by(BillingEvent.block_index)))
