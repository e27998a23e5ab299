from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

PURCHASE_STATUSES = ("pending", "completed", "expired", "failed", "refunded", "disputed")
# Statuses of a purchase whose tokens were credited (its `purchase:<id>` transfer exists).
CREDITED_STATUSES = ("completed", "refunded", "disputed")


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
    currency: Mapped[str] = mapped_column(String(3), server_default=text("'usd'"))
    # Stripe: the Checkout Session is `provider_ref`; its PaymentIntent is what
    # charges, refunds and disputes name.
    payment_intent: Mapped[str | None] = mapped_column(String(255), index=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    # Tokens taken back so far by refunds (cumulative) and held back by an open or lost dispute.
    refunded_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    disputed_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Why the operator should look at it (a paid amount or currency that did not match).
    flagged: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    transfer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("amount_tokens > 0", name="amount_tokens_positive"),
        CheckConstraint("amount_cents >= 0", name="amount_cents_non_negative"),
        CheckConstraint(f"status IN {PURCHASE_STATUSES!r}", name="status"),
        CheckConstraint(f"(status IN {CREDITED_STATUSES!r}) = (transfer_id IS NOT NULL)", name="credited_has_transfer"),
        CheckConstraint("refunded_tokens >= 0 AND disputed_tokens >= 0 "
                        "AND refunded_tokens + disputed_tokens <= amount_tokens", name="taken_back_bounds"),
        Index("ix_purchases_status_created_at", "status", "created_at"),
    )

    def to_dict(self) -> dict:
        """The API's purchase (`GET /api/purchases/:id`); `checkoutUrl` is where to pay while it is pending."""
        return {
            "id": self.id, "amountTokens": self.amount_tokens, "amountCents": self.amount_cents,
            "currency": self.currency, "provider": self.provider, "status": self.status,
            "refundedTokens": self.refunded_tokens, "disputedTokens": self.disputed_tokens,
            "createdAt": self.created_at.isoformat() if self.created_at else None,
            "checkoutUrl": self.checkout_url if self.status == "pending" else None,
        }

