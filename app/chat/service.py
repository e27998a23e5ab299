"""Chat in a stream's room (DESIGN.md §12): messages, history, moderation.

Rules, each written once here and shared by the HTML routes and the JSON API:

* who may read and post: whoever may watch the stream (`streams.service.can_view`);
* what may be posted: one line of 1–500 characters after trimming, with something
  visible in it (not only zero-width characters), no control characters, no bidi
  overrides (app.validation's single-line rule), stored raw and escaped wherever shown;
* where: a scheduled or live stream. An ended or canceled one refuses (409
  `stream_not_live`): its room is closed, the history stays readable;
* who may not: a user the stream's creator banned (403 `banned`) from all of their
  rooms, until the ban expires or is lifted. Bans touch chat only: tipping stays open;
* moderation: the stream's creator deletes a message for everyone (the row stays,
  `deleted_at`, and is shown to no one) and bans or unbans anyone but themselves.

How a message is shown (the same for every viewer, so one rendering is pushed to
all): its text masked when the creator's profanity filter is on (`alerts`), a crown
for the creator's 30-day top tipper (`leaderboard.king_of`), "Creator" on the
creator's own lines.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text

from app import validation
from app.alerts.service import AlertSettings, settings_of, shown_text
from app.auth.models import User
from app.auth.service import require_creator
from app.chat import pushes
from app.chat.models import ChatBan, ChatMessage
from app.clock import now
from app.errors import Conflict, Forbidden, InvalidValue, NotFound
from app.extensions import db
from app.leaderboard.service import king_of
from app.streams.models import Stream
from app.streams.service import can_view, get_stream
from app.tips.models import Tip

MESSAGE_MAX = 500
PAGE_SIZE = 50  # messages per page of history
# Lines a page keeps while it follows a live chat: beyond, the oldest go ("Load earlier" brings
# them back). A busy room would otherwise add a node per message for as long as it stays open.
LINES_KEPT = 200
BAN_MINUTES_MAX = 525_600  # a year
OPEN_STATUSES = ("scheduled", "live")


@dataclass(frozen=True)
class Room:
    """What every line of one stream's chat is shown with."""
    stream_id: int
    creator_id: int
    settings: AlertSettings
    king_id: int | None

    @classmethod
    def of(cls, stream: Stream) -> "Room":
        return cls(stream.id, stream.creator_id, settings_of(stream.creator_id), king_of(stream.creator_id))


@dataclass(frozen=True)
class ChatLine:
    """A message as everyone in the room sees it (`text` is the shown text)."""
    id: int
    stream_id: int
    user_id: int
    display_name: str
    text: str
    created_at: datetime
    is_creator: bool
    is_king: bool
    kind: str = "message"

    @classmethod
    def of(cls, message: ChatMessage, display_name: str, room: Room) -> "ChatLine":
        return cls(message.id, message.stream_id, message.user_id, display_name,
                   shown_text(message.text, room.settings), message.created_at,
                   message.user_id == room.creator_id, message.user_id == room.king_id)

    def to_dict(self) -> dict:
        return {"id": self.id, "userId": self.user_id, "displayName": self.display_name, "text": self.text,
                "createdAt": self.created_at.isoformat()}


@dataclass(frozen=True)
class TipLine:
    """A tip into the stream, as a line of its chat (rendered by tips/_tip_item.html)."""
    tip: Tip
    sender_name: str
    kind: str = "tip"

    @property
    def created_at(self) -> datetime:
        return self.tip.created_at


@dataclass(frozen=True)
class History:
    """A page of a room's chat: messages and tips merged by time, oldest first.
    `earliest_id`: the oldest message shown (what "Load earlier" asks before);
    `has_more`: older messages exist."""
    stream: Stream
    items: list
    earliest_id: int | None
    has_more: bool


@dataclass(frozen=True)
class BanView:
    user_id: int
    display_name: str
    expires_at: datetime | None

    def to_dict(self) -> dict:
        return {"userId": self.user_id, "displayName": self.display_name,
                "expiresAt": self.expires_at.isoformat() if self.expires_at else None}


# ---- input ---------------------------------------------------------------------------------------

def chat_text(raw) -> str:
    """The message as stored: trimmed, one line, 1–500 characters with something visible in
    it. `InvalidValue` on field `text` otherwise."""
    value = validation.text_value(raw, "text", label="Message", max_length=MESSAGE_MAX, single_line=True)
    # Zero-width spaces and joiners (format characters) are no message on their own.
    if all(unicodedata.category(c) == "Cf" or c.isspace() for c in value):
        raise InvalidValue("Message is required.", field="text")
    return value


def before_id(raw) -> int | None:
    """The `before` query argument: a message id, or None when absent. `InvalidValue` otherwise."""
    if raw is None or raw == "":
        return None
    value = validation.ascii_int(raw)
    if not value:
        raise InvalidValue("before must be a message id.", field="before")
    return value


def ban_minutes(raw) -> int | None:
    """`minutes` of a ban: None (until unbanned) or a whole number 1..525,600."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= BAN_MINUTES_MAX:
        raise InvalidValue(f"minutes must be a whole number from 1 to {BAN_MINUTES_MAX:,}, or left out.",
                           field="minutes")
    return raw


# ---- reading -------------------------------------------------------------------------------------

def viewable_stream(user, stream_id) -> Stream:
    """The stream, if `user` may watch it: `NotFound` (stream_not_found), `Forbidden` (no_access)."""
    stream = get_stream(stream_id)
    if not can_view(user, stream):
        raise Forbidden("You don't have access to this stream.", "no_access")
    return stream


def messages_before(user, stream_id, before: int | None = None) -> list[ChatLine]:
    """The newest `PAGE_SIZE` messages of the stream (older than message `before`, if
    given), oldest first, deleted ones left out. Same access rule as watching."""
    stream = viewable_stream(user, stream_id)
    return _messages(stream, Room.of(stream), before, PAGE_SIZE)


def _messages(stream: Stream, room: Room, before: int | None, limit: int) -> list[ChatLine]:
    q = (select(ChatMessage, User.display_name).join(User, User.id == ChatMessage.user_id)
         .where(ChatMessage.stream_id == stream.id, ChatMessage.deleted_at.is_(None)))
    if before is not None:
        q = q.where(ChatMessage.id < before)
    rows = db.session.execute(q.order_by(ChatMessage.id.desc()).limit(limit)).all()
    return [ChatLine.of(m, name, room) for m, name in reversed(rows)]


def page_history(stream: Stream, before: int | None = None) -> History:
    """What the stream page's chat shows: the newest `PAGE_SIZE` messages (older than
    message `before`, if given) and the stream's tips from the same stretch of time, merged
    by time, oldest first. The first page also has the tips after its newest message."""
    room = Room.of(stream)
    lines = _messages(stream, room, before, PAGE_SIZE + 1)
    has_more = len(lines) > PAGE_SIZE
    lines = lines[1:] if has_more else lines
    upper = _created_at(stream.id, before) if before is not None else None
    lower = lines[0].created_at if has_more and lines else None
    if before is not None and upper is None:
        tips = []  # `before` names no message of this stream: no stretch of time to show
    else:
        tips = _tips_between(stream.id, lower, upper)
    items = sorted([*lines, *tips], key=lambda item: (item.created_at, item.kind == "message"))
    return History(stream, items, lines[0].id if lines else before, has_more)


def _created_at(stream_id: int, message_id: int) -> datetime | None:
    return db.session.scalar(select(ChatMessage.created_at).where(
        ChatMessage.id == message_id, ChatMessage.stream_id == stream_id))


def _tips_between(stream_id: int, lower: datetime | None, upper: datetime | None) -> list[TipLine]:
    q = select(Tip, User.display_name).join(User, User.id == Tip.sender_id).where(Tip.stream_id == stream_id)
    if lower is not None:
        q = q.where(Tip.created_at >= lower)
    if upper is not None:
        q = q.where(Tip.created_at < upper)
    rows = db.session.execute(q.order_by(Tip.id.desc()).limit(PAGE_SIZE)).all()
    return [TipLine(tip, name) for tip, name in rows]


def history_for_channel(channel: str) -> History | None:
    """The first page of history of the stream whose channel is `channel` (None: no such stream)."""
    from app.streams.service import stream_for_channel
    stream = stream_for_channel(channel)
    return page_history(stream) if stream is not None else None


# ---- posting -------------------------------------------------------------------------------------

def is_banned(creator_id: int, user_id: int) -> bool:
    """True while `user_id` has a ban from `creator_id`'s rooms that has not expired."""
    return db.session.scalar(text(
        "SELECT EXISTS (SELECT 1 FROM chat_bans WHERE creator_id = :c AND user_id = :u "
        "AND (expires_at IS NULL OR expires_at > :now))"), {"c": creator_id, "u": user_id, "now": now()})


def post_message(user, stream_id, raw_text) -> ChatLine:
    """Post a message in the stream's chat as `user`; commits, then publishes it to the room.

    Raises `NotFound` (stream_not_found), `Forbidden` (no_access; banned), `Conflict`
    (stream_not_live: the stream ended or was canceled) and `InvalidValue` (text)."""
    stream = viewable_stream(user, stream_id)
    if stream.status not in OPEN_STATUSES:
        raise Conflict("The stream has ended: its chat is closed.", "stream_not_live")
    if user.id != stream.creator_id and is_banned(stream.creator_id, user.id):
        raise Forbidden("The creator has banned you from their chat.", "banned")
    value = chat_text(raw_text)
    message = ChatMessage(stream_id=stream.id, user_id=user.id, text=value)
    db.session.add(message)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    line = ChatLine.of(message, user.display_name, Room.of(stream))
    pushes.message_posted(stream.channel, line)
    return line


# ---- moderation ----------------------------------------------------------------------------------

def delete_message(user, stream_id, message_id) -> ChatMessage:
    """Delete a message of the stream for everyone, as the stream's creator; commits, then
    tells the room. Deleting it again changes nothing. Raises `NotFound` (stream_not_found;
    message_not_found: unknown, or another stream's) and `Forbidden` (not_stream_owner)."""
    stream = get_stream(stream_id)
    if user.id != stream.creator_id:
        raise Forbidden("Only the stream's creator can delete messages.", "not_stream_owner")
    message = db.session.get(ChatMessage, message_id) if validation.is_record_id(message_id) else None
    if message is None or message.stream_id != stream.id:
        raise NotFound("No such message in this stream.", "message_not_found")
    if message.deleted_at is None:
        message.deleted_at, message.deleted_by = now(), user.id
        try:
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    pushes.message_deleted(stream.channel, message.id)
    return message


def ban_user(creator, user_id, minutes=None) -> tuple[BanView, bool]:
    """Ban `user_id` from chatting in all of `creator`'s rooms, for `minutes` (None: until
    unbanned); a second ban replaces the first. Returns the ban and whether it is new.
    Raises `Forbidden` (not_a_creator), `InvalidValue` (userId, minutes; self_ban) and
    `NotFound` (user_not_found)."""
    require_creator(creator, "Only creators can ban people from their chat.")
    validation.record_id(user_id, "userId", "userId must be a user's id.")
    minutes = ban_minutes(minutes)
    if user_id == creator.id:
        raise InvalidValue("You can't ban yourself.", "self_ban", field="userId")
    name = db.session.scalar(select(User.display_name).where(User.id == user_id))
    if name is None:
        raise NotFound("No such user.", "user_not_found")
    expires_at = now() + timedelta(minutes=minutes) if minutes else None
    try:
        created = db.session.scalar(text(
            "INSERT INTO chat_bans (creator_id, user_id, expires_at) VALUES (:c, :u, :e) "
            "ON CONFLICT (creator_id, user_id) DO UPDATE SET expires_at = EXCLUDED.expires_at, created_at = now() "
            "RETURNING xmax = 0"), {"c": creator.id, "u": user_id, "e": expires_at})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return BanView(user_id, name, expires_at), bool(created)


def unban_user(creator, user_id) -> str | None:
    """Lift `creator`'s ban of `user_id` (nothing to do if there is none); commits. Returns
    the user's name (None: no such user). Raises `Forbidden` (not_a_creator)."""
    require_creator(creator, "Only creators can ban people from their chat.")
    if not validation.is_record_id(user_id):
        return None
    db.session.execute(ChatBan.__table__.delete().where(ChatBan.creator_id == creator.id,
                                                        ChatBan.user_id == user_id))
    db.session.commit()
    return db.session.scalar(select(User.display_name).where(User.id == user_id))


def bans_of(creator) -> list[BanView]:
    """The creator's bans in force, the latest first."""
    rows = db.session.execute(
        select(ChatBan.user_id, User.display_name, ChatBan.expires_at).join(User, User.id == ChatBan.user_id)
        .where(ChatBan.creator_id == creator.id)
        .where((ChatBan.expires_at.is_(None)) | (ChatBan.expires_at > now()))
        .order_by(ChatBan.created_at.desc(), ChatBan.user_id.desc()).limit(500)).all()
    return [BanView(*row) for row in rows]
