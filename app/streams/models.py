from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

STREAM_TYPES = ("public", "private")
STREAM_STATUSES = ("scheduled", "live", "ended", "canceled")
CANCEL_REASONS = ("creator", "no_show")
TICKET_STATUSES = ("valid", "refunded")
CHANNEL_PREFIX = "s-"  # every stream's channel name starts so (streams.live serves them)


class Stream(db.Model):
    __tablename__ = "streams"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creator_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(16))
    ticket_price: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'scheduled'"))
    # The realtime channel name viewers subscribe to (unguessable, unique; CHANNEL_PREFIX…).
    channel: Mapped[str] = mapped_column(String(64), unique=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(String(16))
    # A private show's ticket money: its own escrow account, so settling or
    # refunding one show never sums another show's entries.
    escrow_account_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_accounts.id"))
    settlement_transfer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    # Set once every ticket of a canceled show has been refunded.
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Since when the creator's encoder has been publishing to the media server;
    # None while it is not (app.streams.media). Only the player's wording uses it.
    broadcasting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"type IN {STREAM_TYPES!r}", name="type"),
        CheckConstraint(f"status IN {STREAM_STATUSES!r}", name="status"),
        CheckConstraint("(type = 'private') = (ticket_price IS NOT NULL)", name="price_iff_private"),
        CheckConstraint("ticket_price IS NULL OR ticket_price BETWEEN 1 AND 1000000", name="ticket_price_range"),
        CheckConstraint("(type = 'private') = (escrow_account_id IS NOT NULL)", name="escrow_iff_private"),
        CheckConstraint(f"cancel_reason IS NULL OR (status = 'canceled' AND cancel_reason IN {CANCEL_REASONS!r})",
                        name="cancel_reason"),
        CheckConstraint("settlement_transfer_id IS NULL OR status = 'ended'", name="settled_only_when_ended"),
        Index("ix_streams_status_starts_at", "status", "starts_at"),
    )

    @property
    def is_private(self) -> bool:
        return self.type == "private"

    def to_dict(self) -> dict:
        return {"id": self.id, "channel": self.channel, "type": self.type, "ticketPrice": self.ticket_price,
                "status": self.status, "title": self.title, "creatorId": self.creator_id,
                "startsAt": self.starts_at.isoformat() if self.starts_at else None}


class Ticket(db.Model):
    """A fan's ticket to a private show: the price moved from their wallet to the
    show's escrow (`ticket:<stream>:<fan>`); refunded by its own transfer."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stream_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("streams.id"))
    fan_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    price: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'valid'"))
    transfer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    refund_transfer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        UniqueConstraint("stream_id", "fan_id"),  # one ticket per fan per show
        CheckConstraint("price BETWEEN 1 AND 1000000", name="price_range"),
        CheckConstraint(f"status IN {TICKET_STATUSES!r}", name="status"),
        CheckConstraint("(status = 'refunded') = (refund_transfer_id IS NOT NULL)", name="refunded_has_transfer"),
        Index("ix_tickets_stream_id_status_id", "stream_id", "status", "id"),
    )

    def to_dict(self) -> dict:
        return {"id": self.id, "streamId": self.stream_id, "fanId": self.fan_id, "price": self.price,
                "status": self.status, "createdAt": self.created_at.isoformat() if self.created_at else None,
                "refundedAt": self.refunded_at.isoformat() if self.refunded_at else None}
