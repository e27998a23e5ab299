"""Dashboard tables (migration 0010). Only `app.dashboard.rollups` writes them."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, DateTime, Integer, SmallInteger, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class RollupState(db.Model):
    """The single watermark row: entries with id <= last_entry_id are in the
    rollups, entries above it are not (the dashboards read those directly)."""
    __tablename__ = "rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_entry_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The UTC day the moving windows (RollupPairWindow) end on; None until first built.
    window_day: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)


class RollupDaily(db.Model):
    """Sum of one account's entries per UTC day and transfer kind."""
    __tablename__ = "rollup_daily"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    transfer_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(BigInteger)
    min_entry_id: Mapped[int] = mapped_column(BigInteger)


class RollupDailyPair(db.Model):
    """Per day and counterparty (fan of an earnings account, creator of a wallet)."""
    __tablename__ = "rollup_daily_pair"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    counterparty_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    transfer_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class RollupPairTotal(db.Model):
    """All-time per counterparty (the "all" range of top fans / spending by creator)."""
    __tablename__ = "rollup_pair_total"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    counterparty_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class RollupPairWindow(db.Model):
    """Per counterparty over the moving windows today / 7 days / 30 days (`span` days
    ending on `RollupState.window_day`), earnings accounts only (top fans). No zero rows."""
    __tablename__ = "rollup_pair_window"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    span: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    counterparty_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class RollupTotal(db.Model):
    """All-time sum of one account's entries per transfer kind (the "all" range)."""
    __tablename__ = "rollup_total"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    transfer_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(BigInteger)


class RollupDailyRef(db.Model):
    """Per UTC day, per stream or call (`ref_type`, `ref_id`) and transfer kind, earnings
    accounts only: per-stream and per-call revenue."""
    __tablename__ = "rollup_daily_ref"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ref_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    ref_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    transfer_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(BigInteger)


class RollupKindDaily(db.Model):
    """Platform-wide: per UTC day, account kind and transfer kind."""
    __tablename__ = "rollup_kind_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    account_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    transfer_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(BigInteger)
