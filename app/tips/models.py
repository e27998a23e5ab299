from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Tip(db.Model):
    """A tip: the business record beside its ledger transfer (`tip:<id>`)."""

    __tablename__ = "tips"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sender_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    creator_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    creator_share: Mapped[int] = mapped_column(BigInteger)
    platform_share: Mapped[int] = mapped_column(BigInteger)
    # Stored exactly as typed; escaped by the templates whenever shown.
    message: Mapped[str] = mapped_column(Text, default="")
    stream_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("streams.id"))
    call_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str | None] = mapped_column(String(64))
    transfer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_transfers.id"))
    # A menu tip (app/tipmenu): the item, and its label as it was when bought.
    menu_item_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tip_menu_items.id"))
    menu_label: Mapped[str | None] = mapped_column(String(60))
    # Approval mode (app/alerts): 'pending' until the creator approves ('approved') or
    # hides ('hidden') the message for the OBS source; None when no approval was needed.
    message_status: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # created_at comes back with the INSERT (RETURNING), not a later SELECT.
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("creator_share + platform_share = amount", name="split_adds_up"),
        CheckConstraint("sender_id <> creator_id", name="not_self"),
        CheckConstraint("char_length(message) <= 280", name="message_length"),
        Index("ix_tips_creator_id_id", "creator_id", "id"),
        Index("ix_tips_stream_id_id", "stream_id", "id"),
        CheckConstraint("message_status IN ('pending', 'approved', 'hidden')", name="message_status"),
        CheckConstraint("(menu_item_id IS NULL) = (menu_label IS NULL)", name="menu_item_labelled"),
    )

    def to_dict(self) -> dict:
        return {"id": self.id, "fromUserId": self.sender_id, "toCreatorId": self.creator_id,
                "amountTokens": self.amount, "creatorShare": self.creator_share,
                "platformShare": self.platform_share, "message": self.message, "streamId": self.stream_id,
                "callId": self.call_id, "channel": self.channel, "menuItemId": self.menu_item_id,
                "menuLabel": self.menu_label,
                "createdAt": self.created_at.isoformat() if self.created_at else None}
