"""A creator's avatar image; the handle, bio and avatar version live on `users`."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, func
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Avatar(db.Model):
    """The re-encoded square WebP (metadata stripped) shown for `user_id`."""

    __tablename__ = "avatars"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    webp: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
