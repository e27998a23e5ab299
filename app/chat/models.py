from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class ChatMessage(db.Model):
    """A message in a stream's chat, stored as typed (escaped wherever shown). A message
    the stream's creator deleted keeps its row (`deleted_at`, `deleted_by`) and is shown
    to no one."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stream_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("streams.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("char_length(text) BETWEEN 1 AND 500", name="text_length"),
        Index("ix_chat_messages_stream_id_id", "stream_id", "id"),
    )


class ChatBan(db.Model):
    """`user_id` may not chat in any room of `creator_id` until `expires_at` (None: until
    unbanned). Tipping stays allowed."""

    __tablename__ = "chat_bans"

    creator_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("creator_id <> user_id", name="not_self"),)
