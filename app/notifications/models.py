from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, func
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Notification(db.Model):
    """One notification for `user_id`. `dedupe_key` is unique per user: writing the same
    event twice (a fan-out job run again) leaves one row."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(String(300))
    dedupe_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("uq_notifications_user_id_dedupe_key", "user_id", "dedupe_key", unique=True),
        Index("ix_notifications_unread", "user_id", postgresql_where=sql_text("read_at IS NULL")),
    )

    def to_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "text": self.text, "url": self.url,
                "createdAt": self.created_at.isoformat() if self.created_at else None,
                "readAt": self.read_at.isoformat() if self.read_at else None}
