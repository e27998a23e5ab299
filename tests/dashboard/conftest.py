"""Fixtures for the dashboard tests: a history builder that makes money move
through the real services (tips, tickets + settlement, canceled-show refunds,
metered call blocks) and then dates each new transfer on a chosen UTC moment.

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

from app.calls import service as calls
from app.extensions import db
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
    db.session.commit()


class History:
    """Moves money with the real services; `at(moment)` dates what moved since the last call.
    Streams and calls come from the shared factories (`make_stream`, `make_call`)."""

    def __init__(self, rng, clock, make_stream, make_call):
        self.rng, self.clock = rng, clock
        self.make_stream, self.make_call = make_stream, make_call
        self.mark = last_transfer_id()

    def at(self, moment: datetime) -> None:
        redate_since(self.mark, moment)
        self.mark = last_transfer_id()

    def tip(self, fan, creator, amount, stream=None):
        ctx = {"streamId": stream.id} if stream is not None else None
        tips.send_tip(fan, creator.id, amount, "", ctx, f"t-{uuid.uuid4()}")

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

    def call(self, fan, creator, blocks: int, tip: int = 0):
        """A call billed for `blocks` blocks by the real meter (and, with `tip`, a tip
        of that many tokens from its fan during it), then ended."""
        call_id = self.make_call(rate=self.rng.randint(1, 40), fan=fan, creator=creator).call_id  # block 0
        if tip:
            tips.send_tip(fan, creator.id, tip, "", {"callId": call_id}, f"t-{uuid.uuid4()}")
        for _ in range(blocks - 1):
            self.clock.advance(30)
            calls.meter()
        calls.end(fan, call_id)
        return call_id


@pytest.fixture()
def history(clock, make_stream, make_call):
    import random
    return lambda seed: History(random.Random(seed), clock, make_stream, make_call)


def utc(y, m, d, hh=0, mm=0, ss=0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=timezone.utc)


def day_start(dt: datetime) -> datetime:
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


__all__ = ["History", "redate_since", "utc", "day_start", "timedelta"]
