from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, SmallInteger, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class TipMenuItem(db.Model):
    """One line of a creator's tip menu. An edit keeps the id while the label stays (so a
    tip at the old price is told `price_changed`); a removed item keeps its row
    (`removed_at`) for the tips that name it."""

    __tablename__ = "tip_menu_items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    creator_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(60))
    price_tokens: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("char_length(label) BETWEEN 1 AND 60", name="label_length"),
        CheckConstraint("price_tokens > 0", name="price_positive"),
        CheckConstraint("position BETWEEN 0 AND 29", name="position"),
        Index("uq_tip_menu_items_position", "creator_id", "position", unique=True,
              postgresql_where=text("removed_at IS NULL")),
        Index("uq_tip_menu_items_label", "creator_id", "label", unique=True,
              postgresql_where=text("removed_at IS NULL")),
    )

    def to_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "priceTokens": self.price_tokens}
