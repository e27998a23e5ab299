from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class StreamGoal(db.Model):
    """A stream's tip goal. Its progress is the gross tokens of the stream's tips with
    `id > after_tip_id` (those made after it was set), read from the tips: there is no
    counter to drift. One current goal per stream (`replaced_at IS NULL`); `reached_at`
    is set once, by whoever announces it."""

    __tablename__ = "stream_goals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stream_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("streams.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(80))
    target_tokens: Mapped[int] = mapped_column(BigInteger)
    after_tip_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("char_length(title) BETWEEN 1 AND 80", name="title_length"),
        CheckConstraint("target_tokens > 0", name="target_positive"),
        Index("uq_stream_goals_current", "stream_id", unique=True, postgresql_where=text("replaced_at IS NULL")),
    )
