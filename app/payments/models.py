"""What the payments layer keeps: the Stripe events already handled."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class StripeEvent(db.Model):
    """One webhook event, recorded in the transaction that handled it: its id is
    the primary key, so an event is handled at most once however often (and
    however concurrently) Stripe delivers it."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    # The connected account it came from (Connect events), else NULL.
    account: Mapped[str | None] = mapped_column(String(255))
    # What handling it did: "handled", "ignored" (unknown type), or a reason it changed nothing.
    outcome: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
