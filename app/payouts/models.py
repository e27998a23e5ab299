"""Payout accounts (Stripe Connect Express) and payouts (DESIGN.md §11)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

PAYOUT_STATUSES = ("requested", "approved", "paid", "failed", "rejected")
# A payout in one of these still holds its tokens in `payouts_in_transit`.
IN_TRANSIT_STATUSES = ("requested", "approved")


class PayoutAccount(db.Model):
    """A creator's connected account: created once, ready once Stripe says payouts are enabled."""

    __tablename__ = "payout_accounts"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True)
    stripe_account_id: Mapped[str] = mapped_column(String(255), unique=True)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    details_submitted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Payout(db.Model):
    """Tokens a creator takes out: they leave earnings for `payouts_in_transit` when
    requested (`transfer_id`), and leave that for `payouts_paid` when the Stripe
    transfer is made, or go back to earnings when it fails or is rejected."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    amount_tokens: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'requested'"))
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(255))
    transfer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    decided_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("amount_tokens > 0 AND amount_cents >= 0", name="amounts"),
        CheckConstraint(f"status IN {PAYOUT_STATUSES!r}", name="status"),
        CheckConstraint("status <> 'paid' OR (paid_at IS NOT NULL AND stripe_transfer_id IS NOT NULL)",
                        name="paid_has_transfer"),
        Index("ix_payouts_user_id_id", "user_id", "id"),
        Index("ix_payouts_status_id", "status", "id"),
    )

    def to_dict(self) -> dict:
        body = {"id": self.id, "amountTokens": self.amount_tokens, "amountCents": self.amount_cents,
                "currency": self.currency, "status": self.status,
                "createdAt": self.created_at.isoformat() if self.created_at else None}
        if self.paid_at:
            body["paidAt"] = self.paid_at.isoformat()
        if self.failure_reason:
            body["failureReason"] = self.failure_reason
        return body
