"""Ledger tables. Only `app.ledger` writes them; see `app/ledger/__init__.py`."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, func,
                        text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.ledger.kinds import TransferKind

ACCOUNT_KINDS = ("wallet", "earnings", "platform_fees", "token_sales", "escrow", "debt", "payouts_in_transit",
                 "payouts_paid")
# One per user (wallet, earnings, debt) / one per platform (the system accounts).
USER_KINDS = ("wallet", "earnings", "debt")
SYSTEM_KINDS = ("platform_fees", "token_sales", "payouts_in_transit", "payouts_paid")
# Accounts whose row keeps the balance (a user's own, never hot).
CACHED_KINDS = ("wallet", "debt")
# Allowed below zero: the issuer (minus the tokens in circulation) and a user's
# debt (minus what refunds and disputes could not take back).
NEGATIVE_ALLOWED = ("token_sales", "debt")
TRANSFER_KINDS = tuple(kind.value for kind in TransferKind)


class LedgerAccount(db.Model):
    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    # True: `balance` is maintained row-by-row (wallets). False: a hot
    # account whose balance is the sum of its entries; `balance` stays 0.
    cached: Mapped[bool] = mapped_column(Boolean)
    balance: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"kind IN {ACCOUNT_KINDS!r}", name="kind"),
        CheckConstraint(f"kind IN {NEGATIVE_ALLOWED!r} OR balance >= 0", name="balance_non_negative"),
        CheckConstraint("kind <> 'debt' OR balance <= 0", name="debt_non_positive"),
        CheckConstraint("cached OR balance = 0", name="derived_balance_zero"),
        Index("uq_ledger_accounts_user_kind", "user_id", "kind", unique=True,
              postgresql_where=text(f"user_id IS NOT NULL AND kind IN {USER_KINDS!r}")),
        Index("uq_ledger_accounts_system_kind", "kind", unique=True,
              postgresql_where=text(f"kind IN {SYSTEM_KINDS!r}")),
    )


class LedgerTransfer(db.Model):
    __tablename__ = "ledger_transfers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"kind IN {TRANSFER_KINDS!r}", name="kind"),
    )


class LedgerEntry(db.Model):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    # Running balance after this entry, for cached (wallet) accounts only.
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_non_zero"),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
    )


class LedgerVerifyRun(db.Model):
    """One `flask ledger verify` run (app.ledger.verify.record_run); the platform view shows the last one."""
    __tablename__ = "ledger_verify_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ok: Mapped[bool] = mapped_column(Boolean)
    violations: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
