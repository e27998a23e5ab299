from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

PURCHASE_STATUSES = ("pending", "completed", "failed")


class Purchase(db.Model):
    """A token purchase: fiat in (integer cents) and, once paid, tokens credited."""

    __tablename__ = "purchases"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    amount_tokens: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    transfer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("amount_tokens > 0", name="amount_tokens_positive"),
        CheckConstraint("amount_cents >= 0", name="amount_cents_non_negative"),
        CheckConstraint(f"status IN {PURCHASE_STATUSES!r}", name="status"),
        CheckConstraint("status <> 'completed' OR transfer_id IS NOT NULL", name="completed_has_transfer"),
    )

    def to_dict(self) -> dict:
        return {
            "id": self.id, "amountTokens": self.amount_tokens, "amountCents": self.amount_cents,
            "provider": self.provider, "status": self.status,
            "createdAt": self.created_at.isoformat() if self.created_at else None,
        }

