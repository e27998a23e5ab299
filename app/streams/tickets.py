"""Tickets for private shows: checkout into escrow, settlement, refunds.

Money path (DESIGN.md §4, §5):

* **Checkout**: fan wallet → the show's own escrow account, one transfer
  `ticket:<stream>:<fan>` and one ticket row, committed together. One ticket
  per fan per show (a unique index and the transfer key both say so); asking
  again returns the same ticket and charges nothing. The show's row is held
  with a shared lock while the ticket is written, so ending or canceling the
  show waits for in-flight checkouts: no ticket lands in escrow after the
  show settled or its refunds began.
* **Settlement**: when a show that went live ends, its escrow pays its
  creator, the platform taking its share (`ledger.creator_payment` on the
  total), by one transfer `stream:<id>:settle`, in the same transaction as
  the status change.
* **Refunds**: a canceled show (by its creator, or by the no-show rule)
  gives every valid ticket back. `refund_show` works in batches: each batch
  locks the next tickets still valid (in id order), moves their money from
  escrow to their fans in one transfer `stream:<id>:refund:<first ticket id>`
  (each fan's share repays what they owe first, `ledger.holder_credit`) and
  marks them refunded, all in one transaction. So running it twice, at
  the same time, or again after it was killed half way refunds every ticket
  exactly once: a ticket is either still valid (and will be refunded) or
  refunded together with its money.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, select, text

from app import ledger
from app.errors import Conflict, Forbidden, InsufficientFunds
from app.extensions import db
from app.protections import service as protections
from app.streams.models import Stream, Ticket
from app.wallet.pushes import balance_changed
from app.wallet.reversals import refuse_if_owing

REFUND_BATCH = 200


@dataclass
class CheckoutResult:
    ticket: Ticket
    new_balance: int
    created: bool


def ticket_of(user, stream: Stream) -> Ticket | None:
    """The user's ticket to `stream` (valid or refunded), or None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return db.session.scalar(select(Ticket).where(Ticket.stream_id == stream.id, Ticket.fan_id == user.id))


def has_valid_ticket(user_id: int, stream_id: int) -> bool:
    return bool(db.session.scalar(select(exists().where(
        Ticket.stream_id == stream_id, Ticket.fan_id == user_id, Ticket.status == "valid"))))


def _check_ticketable(stream: Stream) -> None:
    if stream.type != "private":
        raise Conflict("This stream is free to watch: no ticket needed.", "not_ticketed")
    if stream.status not in ("scheduled", "live"):
        raise Conflict(f"This show has {'ended' if stream.status == 'ended' else 'been canceled'}: "
                       "tickets are no longer sold.", "stream_closed")


def checkout(fan, stream: Stream) -> CheckoutResult:
    """Buy `fan` a ticket to `stream`; commits. A repeat returns the same ticket
    (`created=False`) and moves nothing.

    Raises `Forbidden` (own show; `spend_limit_reached` past the fan's daily cap),
    `Conflict` (public, ended or canceled show), `InsufficientFunds` (with the shortfall) and `AccountRestricted` (the
    fan owes tokens after a refund or chargeback).
    """
    if stream.creator_id == fan.id:
        raise Forbidden("You can't buy a ticket to your own show.", "own_stream")
    wallet = ledger.account_for(fan.id, "wallet")
    existing = ticket_of(fan, stream)
    if existing is not None and existing.status == "valid":
        return CheckoutResult(existing, ledger.balance_of(wallet), created=False)
    _check_ticketable(stream)
    try:
        # Shared lock: checkouts run side by side, ending/canceling waits for them.
        locked = db.session.execute(select(Stream).where(Stream.id == stream.id).with_for_update(read=True)
                                    .execution_options(populate_existing=True)).scalar_one()
        _check_ticketable(locked)
        try:
            protections.hold_within_limit(fan, locked.ticket_price, "This ticket")  # the fan's daily cap
        except Forbidden:
            # A concurrent checkout of this fan's for this show committed while we waited
            # for the wallet: its ticket is the answer, as below.
            db.session.rollback()
            existing = ticket_of(fan, stream)
            if existing is not None and existing.status == "valid":
                return CheckoutResult(existing, ledger.balance_of(wallet), created=False)
            raise
        ticket_id = db.session.execute(text("SELECT nextval('tickets_id_seq')")).scalar_one()
        moved = ledger.transfer(
            ledger.TransferKind.TICKET, f"ticket:{stream.id}:{fan.id}",
            [ledger.Leg(wallet, -locked.ticket_price), ledger.Leg(ledger.escrow_account(locked.escrow_account_id),
                                                                  locked.ticket_price)],
            {"streamId": stream.id, "ticketId": ticket_id, "creatorId": stream.creator_id,
             "streamTitle": stream.title})
        if not moved.created:
            # A concurrent checkout by the same fan committed first (the transfer key
            # waited for it): that ticket is the answer.
            db.session.rollback()
            return CheckoutResult(ticket_of(fan, stream), ledger.balance_of(wallet), created=False)
        ticket = Ticket(id=ticket_id, stream_id=stream.id, fan_id=fan.id, price=locked.ticket_price,
                        transfer_id=moved.transfer_id)
        db.session.add(ticket)
        db.session.commit()
    except InsufficientFunds:
        db.session.rollback()
        refuse_if_owing(fan.id)  # a fan who owes has an empty wallet: asked only once it said no
        raise
    except Exception:
        db.session.rollback()  # a refused checkout leaves nothing behind
        raise
    balance_changed(fan.id, moved.balances[wallet.id])
    return CheckoutResult(ticket, moved.balances[wallet.id], created=True)


def settle(stream: Stream) -> None:
    """Pay a private show's escrow out 80/20 (creator/platform). Call inside the
    transaction that ends the show, with its row locked; does not commit."""
    escrow = ledger.escrow_account(stream.escrow_account_id)
    total = ledger.balance_of(escrow)
    if total == 0:
        return
    payment = ledger.creator_payment(escrow, ledger.account_for(stream.creator_id, "earnings"), total)
    moved = ledger.transfer(ledger.TransferKind.TICKET_SETTLEMENT, f"stream:{stream.id}:settle", payment.legs,
                            {"streamId": stream.id, "streamTitle": stream.title, "creatorId": stream.creator_id})
    stream.settlement_transfer_id = moved.transfer_id


def refund_show(stream_id: int, batch_size: int = REFUND_BATCH) -> int:
    """Refund every valid ticket of a canceled private show; returns how many this
    call refunded. Commits once per batch; idempotent and safe to run
    concurrently or again after a crash (see the module docstring). Marks the
    show `refunded_at` once no valid ticket is left. Does nothing for a show
    that is not canceled."""
    refunded = 0
    while True:
        stream = db.session.get(Stream, stream_id)
        if stream is None or stream.status != "canceled" or stream.type != "private":
            db.session.rollback()
            return refunded
        batch = list(db.session.scalars(
            select(Ticket).where(Ticket.stream_id == stream_id, Ticket.status == "valid")
            .order_by(Ticket.id).limit(batch_size).with_for_update()
            .execution_options(populate_existing=True)))
        if not batch:
            # Rows another run refunded while we waited for their locks drop out of a
            # locked LIMIT query: only "none valid at all" means done.
            if has_valid_ticket_left(stream_id):
                db.session.rollback()
                continue
            if stream.refunded_at is None:
                stream.refunded_at = func.now()
            db.session.commit()
            return refunded
        # Each fan is credited debt first (what a refund or chargeback left them owing).
        holders = ledger.lock_holders([t.fan_id for t in batch])
        legs = [ledger.Leg(ledger.escrow_account(stream.escrow_account_id), -sum(t.price for t in batch))]
        legs += [leg for t in batch for leg in ledger.holder_credit(holders[t.fan_id], t.price)]
        moved = ledger.transfer(ledger.TransferKind.TICKET_REFUND, f"stream:{stream_id}:refund:{batch[0].id}", legs,
                                {"streamId": stream_id, "streamTitle": stream.title,
                                 "reason": stream.cancel_reason or "creator"})
        if not moved.created:
            raise ledger.LedgerError(f"refund batch for stream {stream_id} starting at ticket {batch[0].id} "
                                     "was already posted but its tickets are still valid")
        for t in batch:
            t.status, t.refund_transfer_id, t.refunded_at = "refunded", moved.transfer_id, func.now()
        db.session.commit()
        refunded += len(batch)
        for t in batch:
            holder = holders[t.fan_id]
            balance_changed(t.fan_id, moved.balances.get(holder.wallet.id, holder.wallet_balance))


def has_valid_ticket_left(stream_id: int) -> bool:
    return bool(db.session.scalar(select(exists().where(Ticket.stream_id == stream_id, Ticket.status == "valid"))))


def show_figures(stream_ids: list[int]) -> dict[int, dict]:
    """Per show: tickets sold (still valid), refunded, and gross ticket revenue —
    for the creator's list."""
    rows = db.session.execute(
        select(Ticket.stream_id, Ticket.status, func.count(), func.coalesce(func.sum(Ticket.price), 0))
        .where(Ticket.stream_id.in_(stream_ids)).group_by(Ticket.stream_id, Ticket.status))
    figures = {sid: {"sold": 0, "refunded": 0, "gross": 0} for sid in stream_ids}
    for stream_id, status, count, total in rows:
        if status == "valid":
            figures[stream_id].update(sold=count, gross=int(total))
        else:
            figures[stream_id]["refunded"] = count
    return figures
