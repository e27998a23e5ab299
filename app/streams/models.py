from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

STREAM_TYPES = ("public", "private")
STREAM_STATUSES = ("scheduled", "live", "ended", "canceled")


class Stream(db.Model):
    __tablename__ = "streams"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creator_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(16))
    ticket_price: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'scheduled'"))
    # The realtime channel name viewers subscribe to (unguessable, unique).
    channel: Mapped[str] = mapped_column(String(64), unique=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"type IN {STREAM_TYPES!r}", name="type"),
        CheckConstraint(f"status IN {STREAM_STATUSES!r}", name="status"),
        CheckConstraint("(type = 'private') = (ticket_price IS NOT NULL)", name="price_iff_private"),
        CheckConstraint("ticket_price IS NULL OR ticket_price BETWEEN 1 AND 1000000", name="ticket_price_range"),
    )

    def to_dict(self) -> dict:
        return {"id": self.id, "channel": self.channel, "type": self.type, "ticketPrice": self.ticket_price,
                "status": self.status, "title": self.title, "creatorId": self.creator_id,
                "startsAt": self.starts_at.isoformat() if self.starts_at else None}
