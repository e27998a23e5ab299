"""Pay-per-minute calls and their billing audit log."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func, select, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

CALL_STATUSES = ("requested", "active", "paused", "ended", "declined", "expired")
END_REASONS = ("ended_by_fan", "ended_by_creator", "billing_stopped", "insufficient_funds")
PAUSE_CAUSES = ("fan", "creator", "presence")
EVENT_TYPES = ("block_charged", "paused", "resumed", "stopped", "ended", "low_balance", "insufficient_funds",
               "block_refunded")
BLOCK_RECEIPTS = ("block_charged", "block_refunded")  # events that carry a block's amount and split
REFUND_REASONS = ("media_never_connected", "operator")  # a block_refunded event's reason
CHANNEL_PREFIX = "c-"  # every call's channel name starts so (calls.live serves them)


class Call(db.Model):
    """A 1:1 call. Billing is a pure function of its timeline: `active_ms`
    banked while paused plus, while active, the time since `active_since`
    (see app/calls/billing.py)."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fan_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    creator_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    rate: Mapped[int] = mapped_column(BigInteger)  # tokens per minute, fixed when requested
    block_seconds: Mapped[int] = mapped_column(Integer)  # BILLING_BLOCK_SECONDS when requested
    status: Mapped[str] = mapped_column(String(16), server_default=text("'requested'"))
    end_reason: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(64), unique=True)  # CHANNEL_PREFIX…, unguessable
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Billing clock.
    active_ms: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    active_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_by: Mapped[str | None] = mapped_column(String(16))
    # Presence: when each party's call page (socket + media) went missing; NULL while there.
    fan_missing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    creator_missing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    blocks_charged: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_charged: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    low_balance_block: Mapped[int | None] = mapped_column(Integer)  # last block a warning was logged for
    # When both parties' media first connected (NULL: never). A call whose media never
    # connected during its first block gets that block back (DESIGN.md §11).
    media_connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN {CALL_STATUSES!r}", name="status"),
        CheckConstraint(f"end_reason IS NULL OR end_reason IN {END_REASONS!r}", name="end_reason"),
        CheckConstraint(f"paused_by IS NULL OR paused_by IN {PAUSE_CAUSES!r}", name="paused_by"),
        CheckConstraint("rate BETWEEN 1 AND 100000", name="rate_range"),
        CheckConstraint("fan_id <> creator_id", name="not_self"),
        CheckConstraint("(status = 'active') = (active_since IS NOT NULL)", name="clock_runs_iff_active"),
        CheckConstraint("blocks_charged >= 0 AND total_charged >= 0 AND active_ms >= 0", name="counters"),
        Index("ix_calls_status_id", "status", "id"),
        # The failed-call sweep (calls.refunds) looks only at accepted calls whose media
        # never connected: a small, shrinking set, found without reading every call.
        Index("ix_calls_unconnected_ended_at", "ended_at",
              postgresql_where=text("media_connected_at IS NULL AND accepted_at IS NOT NULL")),
        Index("uq_calls_one_open_per_fan", "fan_id", unique=True,
              postgresql_where=text("status IN ('requested', 'active', 'paused')")),
    )

    def to_dict(self) -> dict:
        body = {"id": self.id, "channel": self.channel, "status": self.status, "rateTokensPerMin": self.rate,
                "fanId": self.fan_id, "creatorId": self.creator_id, "blocksCharged": self.blocks_charged,
                "totalChargedTokens": self.total_charged}
        if self.end_reason:
            body["endReason"] = self.end_reason
        return body


class BillingEvent(db.Model):
    """The audit log both parties read as receipts. One `block_charged` per block, ever,
    and at most one `block_refunded` (same amount and split, `reason` in REFUND_REASONS)."""

    __tablename__ = "billing_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("calls.id"))
    type: Mapped[str] = mapped_column(String(24))
    block_index: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    creator_share: Mapped[int | None] = mapped_column(BigInteger)
    platform_share: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(32))
    transfer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"type IN {EVENT_TYPES!r}", name="type"),
        CheckConstraint("type NOT IN ('block_charged', 'block_refunded') "
                        "OR (block_index IS NOT NULL AND amount IS NOT NULL)",
                        name="block_fields"),
        Index("uq_billing_events_block", "call_id", "block_index", unique=True,
              postgresql_where=text("type = 'block_charged'")),
        # A block is refunded at most once.
        Index("uq_billing_events_block_refunded", "call_id", "block_index", unique=True,
              postgresql_where=text("type = 'block_refunded'")),
        Index("ix_billing_events_call_id_id", "call_id", "id"),
    )

    def to_dict(self) -> dict:
        body = {"type": self.type, "createdAt": self.created_at.isoformat() if self.created_at else None}
        if self.type in BLOCK_RECEIPTS:
            body.update(blockIndex=self.block_index, amountTokens=self.amount, creatorShare=self.creator_share,
                        platformShare=self.platform_share)
        elif self.block_index is not None:
            body["blockIndex"] = self.block_index
            if self.amount is not None:  # low_balance / insufficient_funds: the shortfall
                body["amountTokens"] = self.amount
        if self.reason:
            body["reason"] = self.reason
        return body


def locked_call(call_id: int) -> Call | None:
    """The call with its row locked until the transaction ends, read fresh (None if unknown).
    Every change to a call, its billing and its refunds happens under this lock."""
    return db.session.execute(select(Call).where(Call.id == call_id).with_for_update()
                              .execution_options(populate_existing=True)).scalar_one_or_none()
