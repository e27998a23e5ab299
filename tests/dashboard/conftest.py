"""Fixtures for the dashboard tests: a history builder that makes money move
through the real services (tips, tickets + settlement, canceled-show refunds,
metered call blocks, refunds of call blocks) and the ledger moves of issue 15
whose services live elsewhere (payouts, card refunds and chargebacks: the
transfers those services post, with their kinds, keys and rows), and then dates
each new transfer on a chosen UTC moment.

Entries are immutable and take `now()` when written, so a history spread over
days is made by re-dating the transfers this test just wrote, with the
immutability triggers off for that one statement (`session_replication_role`,
the test database's superuser). Every entry of a transfer gets the same time.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from app import ledger
from app.calls import refunds
from app.calls import service as calls
from app.extensions import db
from app.payouts.models import Payout
from app.streams import service as streams
from app.streams import tickets
from app.tips import service as tips


def last_transfer_id() -> int:
    return db.session.scalar(text("SELECT coalesce(max(id), 0) FROM ledger_transfers"))


def redate_since(after_transfer_id: int, at: datetime) -> None:
    """Move every transfer with id > `after_transfer_id` (and its entries, its tip
    row, its billing events) to the moment `at`."""
    db.session.commit()
    db.session.execute(text("SET LOCAL session_replication_role = replica"))
    params = {"t": after_transfer_id, "at": at}
    db.session.execute(text("UPDATE ledger_entries SET created_at = :at WHERE transfer_id > :t"), params)
    db.session.execute(text("UPDATE ledger_transfers SET created_at = :at WHERE id > :t"), params)
    db.session.execute(text("UPDATE tips SET created_at = :at WHERE transfer_id > :t"), params)
    db.session.execute(text("UPDATE billing_events SET created_at = :at WHERE transfer_id > :t"), params)
    db.session.execute(text("UPDATE payouts SET created_at = :at WHERE transfer_id > :t"), params)
    db.session.commit()


class History:
    """Moves money with the real services; `at(moment)` dates what moved since the last call.
    Streams and calls come from the shared factories (`make_stream`, `make_call`);
    `operator` refunds call blocks."""

    def __init__(self, rng, clock, make_stream, make_call, operator):
        self.rng, self.clock = rng, clock
        self.make_stream, self.make_call = make_stream, make_call
        self.operator = operator  # refunds call blocks
        self.call_ids: list[int] = []  # the calls `call` made, oldest first
        self.mark = last_transfer_id()

    def at(self, moment: datetime) -> None:
        redate_since(self.mark, moment)
        self.mark = last_transfer_id()

    def tip(self, fan, creator, amount, stream=None):
        ctx = {"streamId": stream.id} if stream is not None else None
        tips.send_tip(fan, creator.id, amount, "", ctx, f"t-{uuid.uuid4()}", confirmed=True)

    def show(self, creator, fans, price, *, cancel=False, start=True, end=True, live_tips=()):
        """A private show: tickets for `fans`; then started and ended (settled),
        canceled (refunded), or left scheduled (pending escrow). `live_tips`:
        (fan, amount) tips sent into the show while it is live."""
        stream = self.make_stream(creator, "private", title=f"Show {uuid.uuid4().hex[:4]}", ticket_price=price)
        for fan in fans:
            tickets.checkout(fan, stream)
        if cancel:
            streams.change_status(creator, stream.id, "cancel")
            tickets.refund_show(stream.id, batch_size=2)
        elif start:
            self._go_live(creator, stream, live_tips, end)
        return stream

    def public_stream(self, creator, live_tips=(), *, end=True):
        """A public stream with `live_tips` ((fan, amount)) sent while live; then ended."""
        stream = self.make_stream(creator, title=f"Stream {uuid.uuid4().hex[:4]}")
        self._go_live(creator, stream, live_tips, end)
        return stream

    def _go_live(self, creator, stream, live_tips, end: bool) -> None:
        """Start `stream`, send `live_tips` ((fan, amount)) during it, then end it if `end`."""
        streams.change_status(creator, stream.id, "start")
        for fan, amount in live_tips:
            self.tip(fan, creator, amount, stream)
        if end:
            streams.change_status(creator, stream.id, "end")

    def call(self, fan, creator, blocks: int, tip: int = 0, rate: int | None = None):
        """A call billed for `blocks` blocks by the real meter (and, with `tip`, a tip
        of that many tokens from its fan during it), then ended."""
        rate = self.rng.randint(1, 40) if rate is None else rate
        call_id = self.make_call(rate=rate, fan=fan, creator=creator).call_id  # block 0
        if tip:
            tips.send_tip(fan, creator.id, tip, "", {"callId": call_id}, f"t-{uuid.uuid4()}", confirmed=True)
        for _ in range(blocks - 1):
            self.clock.advance(30)
            calls.meter()
        calls.end(fan, call_id)
        self.call_ids.append(call_id)
        return call_id

    def refundable(self, call_id: int) -> list[int]:
        """The call's blocks that cost something and are not refunded yet."""
        return list(db.session.scalars(text(
            "SELECT block_index FROM billing_events b WHERE call_id = :c AND type = 'block_charged' AND amount > 0 "
            "AND NOT EXISTS (SELECT 1 FROM billing_events r WHERE r.call_id = b.call_id AND r.type = 'block_refunded' "
            "AND r.block_index = b.block_index) ORDER BY block_index"), {"c": call_id}))

    def refund(self, call_id: int, blocks: list[int] | None = None) -> list[int]:
        """An operator gives back `blocks` of a call (None: every one not refunded yet)
        through app/calls/refunds.py; returns the blocks refunded."""
        return refunds.refund_blocks(self.operator, call_id, blocks, f"r-{uuid.uuid4()}").refunded

    def payout(self, creator, amount: int, status: str = "paid") -> None:
        """`amount` of the creator's earnings leave as a payout, the way app/payouts moves
        them: earnings → payouts_in_transit (`payout:<id>`), then → payouts_paid
        (status "paid", `payout:<id>:paid`), back to earnings (status "failed",
        `payout:<id>:return`), or still in transit (status "requested")."""
        payout_id = db.session.scalar(text("SELECT nextval('payouts_id_seq')"))
        earnings = ledger.account_for(creator.id, "earnings")
        transit = ledger.system_account("payouts_in_transit")
        key = f"payout:{payout_id}"
        moved = ledger.transfer(ledger.TransferKind.PAYOUT, key, [ledger.Leg(earnings, -amount),
                                                                  ledger.Leg(transit, amount)])
        if status == "paid":
            ledger.transfer(ledger.TransferKind.PAYOUT_PAID, f"{key}:paid",
                            [ledger.Leg(transit, -amount), ledger.Leg(ledger.system_account("payouts_paid"), amount)])
        elif status == "failed":
            ledger.transfer(ledger.TransferKind.PAYOUT_RETURN, f"{key}:return",
                            [ledger.Leg(transit, -amount), ledger.Leg(earnings, amount)])
        db.session.add(Payout(id=payout_id, user_id=creator.id, amount_tokens=amount, amount_cents=amount,
                              currency="usd", status=status, transfer_id=moved.transfer_id,
                              stripe_transfer_id=f"tr_{payout_id}" if status == "paid" else None,
                              paid_at=db.func.now() if status == "paid" else None))
        db.session.commit()

    def take_back(self, fan, tokens: int, *, dispute: bool = False) -> str:
        """A card refund (or with `dispute`, a chargeback) takes `tokens` of one of the
        fan's purchases back, the way the charge.refunded / charge.dispute.created
        webhooks do: the wallet gives what it holds, the rest becomes the fan's debt.
        Returns the transfer's key."""
        purchase = db.session.execute(text(
            "SELECT id, refunded_tokens, disputed_tokens FROM purchases WHERE user_id = :u AND transfer_id IS NOT NULL "
            "AND amount_tokens - refunded_tokens - disputed_tokens >= :n ORDER BY id LIMIT 1"),
            {"u": fan.id, "n": tokens}).one()
        if dispute:
            key, column, status = f"purchase:{purchase.id}:dispute:dp_{uuid.uuid4().hex[:8]}", "disputed_tokens", \
                "disputed"
        else:
            key, column, status = f"purchase:{purchase.id}:refund:{purchase.refunded_tokens + tokens}", \
                "refunded_tokens", "refunded"
        holder = ledger.lock_holder(fan.id)
        legs = ledger.holder_take_back(holder, tokens) + [ledger.Leg(ledger.system_account("token_sales"), tokens)]
        ledger.transfer(ledger.TransferKind.PURCHASE_REVERSAL, key, legs,
                        {"purchaseId": purchase.id, "reason": "dispute" if dispute else "refund"})
        db.session.execute(text(f"UPDATE purchases SET status = :s, {column} = {column} + :n WHERE id = :p"),
                           {"s": status, "n": tokens, "p": purchase.id})
        db.session.commit()
        return key

    def dispute_won(self, fan, key: str) -> None:
        """The chargeback `key` (from `take_back(dispute=True)`) closed won: its tokens come
        back (`<key>:won`), repaying what the fan owes first."""
        taken = db.session.execute(text(
            "SELECT t.metadata->>'purchaseId' AS purchase_id, e.amount FROM ledger_transfers t "
            "JOIN ledger_entries e ON e.transfer_id = t.id "
            "JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'token_sales' "
            "WHERE t.idempotency_key = :k"), {"k": key}).one()
        holder = ledger.lock_holder(fan.id)
        legs = ledger.holder_credit(holder, taken.amount) + [
            ledger.Leg(ledger.system_account("token_sales"), -taken.amount)]
        ledger.transfer(ledger.TransferKind.PURCHASE_RESTORE, f"{key}:won", legs,
                        {"purchaseId": int(taken.purchase_id), "reason": "dispute_won"})
        db.session.execute(text(
            "UPDATE purchases SET disputed_tokens = disputed_tokens - :n, "
            "status = CASE WHEN refunded_tokens > 0 THEN 'refunded' ELSE 'completed' END WHERE id = :p"),
            {"n": taken.amount, "p": int(taken.purchase_id)})
        db.session.commit()


@pytest.fixture()
def browser_for(new_client):
    """browser_for(user) → a test client logged in as `user` (its own cookies)."""
    from tests.conftest import csrf_from

    def _open(user):
        c = new_client()
        resp = c.post("/login", data={"email": user.email, "password": user.test_password,
                                      "csrf_token": csrf_from(c, "/login")})
        assert resp.status_code == 303, resp.get_data(as_text=True)
        return c
    return _open


@pytest.fixture()
def operator(make_user):
    user = make_user("fan", name="Olga Operator")
    user.is_operator = True
    db.session.commit()
    return user


@pytest.fixture()
def history(clock, make_stream, make_call, operator):
    import random
    return lambda seed: History(random.Random(seed), clock, make_stream, make_call, operator)


def utc(y, m, d, hh=0, mm=0, ss=0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=timezone.utc)


def day_start(dt: datetime) -> datetime:
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


__all__ = ["History", "redate_since", "utc", "day_start", "timedelta"]
