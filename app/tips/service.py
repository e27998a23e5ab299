"""Tips: a fan sends tokens (and a message) to a creator, everyone watching sees it.

The tip row and its ledger transfer (`tip:<id>`: the fan's wallet pays the
creator, `ledger.creator_payment`) commit together; the realtime event is
published only after that commit, and a Redis outage only costs the overlay.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from app import ledger, validation
from app.alerts import service as alerts
from app.auth.models import User
from app.idempotency import IdempotencyKey
from app.auth.service import require_creator
from app.errors import Conflict, Forbidden, InsufficientFunds, InvalidValue, NotFound
from app.extensions import db
from app.protections import service as protections
from app.streams.models import Stream
from app.streams.service import can_view
from app.tips import pushes
from app.tipmenu import service as tipmenu
from app.tips.models import Tip
from app.wallet.reversals import refuse_if_owing

MESSAGE_MAX = 280
# What a tip list shows (a stream's, a call's, a creator's feed and dashboard): on load, and
# live, where the page drops the oldest beyond it (data-keep, static/js/app.js).
RECENT_SHOWN = 10
# Pops on screen at once (#tip-overlay): in a storm the oldest leave early.
POPS_SHOWN = 5
TIP_PRESETS = (50, 100, 250, 500)
SCOPE = "tips.send"


@dataclass
class TipResult:
    tip: Tip
    new_balance: int
    replayed: bool


def tip_amount(raw, *, from_form: bool = False) -> int:
    return validation.token_amount(raw, "amountTokens", maximum=current_app.config["MAX_TIP_TOKENS"],
                                   from_form=from_form)


def tip_message(raw) -> str:
    # Multi-line allowed; stored raw and escaped wherever it is shown.
    return validation.text_value(raw, "message", label="Message", max_length=MESSAGE_MAX, required=False,
                                 single_line=False)


def preview_split(amount: int) -> tuple[int, int]:
    """What the creator and the platform get: the modal shows it before sending."""
    return ledger.split(amount)


def _creator_id(to_creator_id, sender) -> int:
    validation.record_id(to_creator_id, "toCreatorId", "toCreatorId must be a creator's id.")
    if to_creator_id == sender.id:
        raise InvalidValue("You can't tip yourself.", "self_tip", field="toCreatorId")
    return to_creator_id


def _earnings_account(creator_id: int) -> ledger.Account:
    """The creator's earnings account; only creators have one (`become_creator` opens it)."""
    earnings = ledger.account_for(creator_id, "earnings")
    if earnings is None:
        if db.session.get(User, creator_id) is None:
            raise NotFound("No such creator.", "creator_not_found")
        raise InvalidValue("Only creators can receive tips.", "not_a_creator", field="toCreatorId")
    return earnings


def _context(raw, creator_id: int, sender) -> dict:
    """Validate `{streamId?, callId?, channel?}`: each must exist and belong to the creator,
    and the sender must have access to the stream (no tipping into a private show
    one cannot watch: the message would pop up on it)."""
    if raw in (None, {}):
        return {"stream_id": None, "call_id": None, "channel": None}
    if not isinstance(raw, dict) or set(raw) - {"streamId", "callId", "channel"}:
        raise InvalidValue("context may only hold streamId, callId and channel.", field="context")
    stream = None
    stream_id, call_id, channel = raw.get("streamId"), raw.get("callId"), raw.get("channel")
    if stream_id is not None:
        validation.record_id(stream_id, "context.streamId", "context.streamId must be a stream id.")
        stream = db.session.get(Stream, stream_id)
        if stream is None:
            raise NotFound("No such stream.", "stream_not_found")
        if stream.creator_id != creator_id:
            raise Forbidden("That stream belongs to another creator.", "context_mismatch")
    if call_id is not None:
        if stream_id is not None or channel is not None:
            raise InvalidValue("A tip goes to a stream or to a call, not both.", field="context")
        return _call_context(call_id, creator_id, sender)
    if channel is not None:
        if not isinstance(channel, str) or len(channel) > 64:
            raise InvalidValue("context.channel must be a channel name.", field="context.channel")
        owner = stream or db.session.scalar(select(Stream).where(Stream.channel == channel))
        if owner is None or owner.channel != channel:
            raise NotFound("No such channel.", "channel_not_found")
        if owner.creator_id != creator_id:
            raise Forbidden("That channel belongs to another creator.", "context_mismatch")
        stream = owner
    if stream is not None and not can_view(sender, stream):
        raise Forbidden("You don't have access to that stream.", "no_access")
    return {"stream_id": stream.id if stream else None, "call_id": None,
            "channel": stream.channel if stream else None}


def _call_context(call_id, creator_id: int, sender) -> dict:
    """A tip during a call: the call's fan tipping its creator while it runs; it pops
    up on both call pages (the call's channel)."""
    from app.calls.models import Call

    validation.record_id(call_id, "context.callId", "context.callId must be a call id.")
    call = db.session.get(Call, call_id)
    if call is None:
        raise NotFound("No such call.", "call_not_found")
    if call.creator_id != creator_id:
        raise Forbidden("That call is with another creator.", "context_mismatch")
    if call.fan_id != sender.id:
        raise Forbidden("Only the fan on that call can tip during it.", "not_a_participant")
    if call.status not in ("active", "paused"):
        raise Conflict("That call is not running.", "call_not_running")
    return {"stream_id": None, "call_id": call.id, "channel": call.channel}


def send_tip(sender, to_creator_id, amount: int, message: str, context, key: str, *,
             menu_item_id: int | None = None, confirmed: bool = False) -> TipResult:
    """Tip `amount` tokens from `sender` to a creator; commits, then publishes.

    With `menu_item_id` the tip buys that item of the creator's tip menu and must pay
    its current price. A tip over `CONFIRM_TIP_OVER_TOKENS` needs `confirmed`. A fan's
    daily spending cap holds (app/protections).

    Raises `InvalidValue` (bad creator/self/message), `NotFound` (unknown
    creator, context or menu item), `Forbidden` (context of another creator;
    `spend_limit_reached`), `InsufficientFunds` (with the shortfall),
    `AccountRestricted` (the sender owes tokens after a refund or chargeback) and
    `Conflict` (key reused with other parameters; `price_changed`;
    `confirmation_required`). A replay of `key` returns the first tip, moving nothing.
    """
    try:
        return _send_tip(sender, to_creator_id, amount, message, context, key, menu_item_id, confirmed)
    except InsufficientFunds:
        # Only now ask whether the sender owes: a user in debt has an empty wallet, so
        # every tip of theirs ends here and the hot path never pays for the question.
        db.session.rollback()
        refuse_if_owing(sender.id)
        raise
    except Exception:
        db.session.rollback()  # a refused tip leaves nothing behind, not even the key claim
        raise


# The tip row, written beside its transfer (`ledger.transfer_for_request` reserved its id).
# The tip row, written in the ledger's statement once the transfer is posted
# (`ledger.Record`): a tip is one statement and the commit.
_INSERT = ("INSERT INTO tips (id, sender_id, creator_id, amount, creator_share, platform_share, message, stream_id, "
           "call_id, channel, menu_item_id, menu_label, message_status, transfer_id) "
           "SELECT posted.id, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, posted.transfer_id "
           "FROM posted RETURNING created_at")


def _send_tip(sender, to_creator_id, amount, message, context, key, menu_item_id, confirmed) -> TipResult:
    creator_id = _creator_id(to_creator_id, sender)
    earnings = _earnings_account(creator_id)
    ctx = _context(context, creator_id, sender)
    wallet = ledger.account_for(sender.id, "wallet")
    payment = ledger.creator_payment(wallet, earnings, amount)
    # What a menu tip bought (app/tipmenu, below) and whether OBS waits for the creator's
    # approval of the message (app/alerts).
    extra = {"menu_item_id": None, "menu_label": None,
             "message_status": alerts.message_status_for(creator_id, amount, message)}
    params = {"to": creator_id, "amount": amount, "message": message, "context": ctx}
    if menu_item_id is not None:
        params["menuItemId"] = menu_item_id
    try:
        if menu_item_id is not None:
            item = tipmenu.item_for_tip(creator_id, menu_item_id, amount)  # share-locked until the commit
            extra.update(menu_item_id=item.id, menu_label=item.label)
        protections.hold_within_limit(sender, amount, "This tip")
        protections.require_confirmation(sender, amount, confirmed)
    except (NotFound, Conflict, Forbidden, InsufficientFunds):
        # A request already answered (its key used) gets that answer again, or 409 for a
        # key reused with other parameters: the ledger statement below says which.
        if db.session.get(IdempotencyKey, (sender.id, key)) is None:
            raise
    moved = ledger.transfer_for_request(
        ledger.TransferKind.TIP, payment.legs, {"creatorId": creator_id, "fanId": sender.id},
        user_id=sender.id, key=key, scope=SCOPE, id_sequence="tips_id_seq", params=params,
        record=ledger.Record(_INSERT, (sender.id, creator_id, amount, payment.creator_share, payment.platform_share,
                                       message, ctx["stream_id"], ctx["call_id"], ctx["channel"],
                                       extra["menu_item_id"], extra["menu_label"], extra["message_status"])))
    balance = moved.transfer.balances[wallet.id]
    if not moved.transfer.created:
        db.session.rollback()
        return TipResult(db.session.get(Tip, moved.resource_id), balance, replayed=True)
    tip = Tip(id=moved.resource_id, sender_id=sender.id, creator_id=creator_id, amount=amount,
              creator_share=payment.creator_share, platform_share=payment.platform_share, message=message,
              transfer_id=moved.transfer.transfer_id, created_at=moved.recorded, **ctx, **extra)
    db.session.commit()
    pushes.tip_sent(tip, sender, balance)
    return TipResult(tip, balance, replayed=False)


@dataclass
class TipView:
    """A tip with the sender's name, as every template shows it."""
    tip: Tip
    sender_name: str


def recent_tips(*, stream_id: int | None = None, call_id: int | None = None, creator_id: int | None = None,
                limit: int = RECENT_SHOWN) -> list[TipView]:
    """The latest tips of a stream, of a call, or to a creator (give exactly one)."""
    q = select(Tip, User.display_name).join(User, User.id == Tip.sender_id)
    if stream_id is not None:
        q = q.where(Tip.stream_id == stream_id)
    elif call_id is not None:
        q = q.where(Tip.call_id == call_id)
    else:
        q = q.where(Tip.creator_id == creator_id)
    return [TipView(t, name) for t, name in db.session.execute(q.order_by(Tip.id.desc()).limit(limit))]


@dataclass
class TipReceipt:
    """What the sender's receipt says of a tip: to whom, and in which stream (if any)."""
    creator_name: str
    stream_id: int | None
    stream_title: str | None


def tip_receipt(transfer_id: int, transfer_key: str) -> TipReceipt | None:
    """The tip behind ledger transfer `transfer_id` (its key is `tip:<tip id>`), or None when
    the key names no tip of that transfer."""
    prefix, _, tip_id = transfer_key.partition(":")
    if prefix != ledger.TransferKind.TIP or not tip_id.isdecimal():
        return None
    row = db.session.execute(
        select(User.display_name, Stream.id, Stream.title).select_from(Tip)
        .join(User, User.id == Tip.creator_id).outerjoin(Stream, Stream.id == Tip.stream_id)
        .where(Tip.id == int(tip_id), Tip.transfer_id == transfer_id)
    ).one_or_none()
    return TipReceipt(*row) if row else None


def creator_for_overlay(secret) -> User | None:
    if not isinstance(secret, str) or not 20 <= len(secret) <= 64:
        return None
    user = db.session.scalar(select(User).where(User.overlay_secret == secret))
    # Compare again in constant time: the lookup is by index, the check must not leak.
    if user is None or not secrets.compare_digest(user.overlay_secret, secret):
        return None
    return user


def overlay_secret(creator) -> str:
    """The creator's OBS overlay secret, created on first use."""
    if not creator.overlay_secret:
        return regenerate_overlay_secret(creator)
    return creator.overlay_secret


def regenerate_overlay_secret(creator) -> str:
    """Replace the secret: the old overlay URL stops working at once; commits."""
    require_creator(creator, "Only creators have an overlay.")
    creator.overlay_secret = secrets.token_urlsafe(24)
    db.session.commit()
    return creator.overlay_secret
