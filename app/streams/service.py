"""Streams: creation, the status machine and the access rule.

States: scheduled → live → ended; canceled from scheduled or live. Every
status change is published to the stream's channel after the commit.
Private shows sell tickets into their own escrow account (`tickets.py`):
ending a show that went live settles it in the same transaction; canceling
one (by its creator, or `cancel_no_shows` when it never started within
`NO_SHOW_GRACE_MINUTES` of `startsAt`) queues the refund of every ticket.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from flask import current_app

from sqlalchemy import case, func, select, text

from app import ledger, validation
from app.auth.service import require_creator
from app.errors import Conflict, Forbidden, InvalidValue, NotFound
from app.extensions import db
from app.streams import pushes
from app.streams.models import CHANNEL_PREFIX, STREAM_TYPES, Stream
from app.wallet.pushes import earnings_changed

TITLE_MAX = 120
TICKET_MAX = 1_000_000
STARTS_AT_MIN_YEAR, STARTS_AT_MAX_YEAR = 2000, 9998
_TRANSITIONS = {"start": ({"scheduled"}, "live"), "end": ({"live"}, "ended"),
                "cancel": ({"scheduled", "live"}, "canceled")}
# Why a transition is refused, as a person reads it ("This stream has already ended, so …").
_STATUS_NOW = {"scheduled": "has not started yet", "live": "is already live", "ended": "has already ended",
               "canceled": "was canceled"}


def _parse_starts_at(value):
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidValue("startsAt must be an ISO 8601 date-time.", field="startsAt")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue("startsAt must be an ISO 8601 date-time, like 2026-12-01T20:00:00Z.",
                           field="startsAt") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    # Bound it: a date that is out of Python's range once in UTC (year 0 or 10000)
    # would be stored, then fail every page that loads the stream.
    try:
        parsed = parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        parsed = None
    if parsed is None or not STARTS_AT_MIN_YEAR <= parsed.year <= STARTS_AT_MAX_YEAR:
        raise InvalidValue(f"startsAt must be between {STARTS_AT_MIN_YEAR} and {STARTS_AT_MAX_YEAR}.",
                           field="startsAt")
    return parsed


def create_stream(creator, type_, title=None, ticket_price=None, starts_at=None, *, from_form=False) -> Stream:
    """Create a scheduled stream owned by `creator`; commits.

    Raises `Forbidden` for non-creators and `InvalidValue` (all bad fields)
    for a bad type, title, ticket price (private: 1..1,000,000; public: none)
    or start time. The title is optional for the JSON API (DESIGN §7: none
    gives "<name> live"); a person filling in the form (`from_form`) is asked
    for one, so an empty form never creates a public stream by accident.
    """
    require_creator(creator, "Only creators can create streams. Become a creator from your account page.")
    errors = validation.Errors()
    type_ = errors.check("type", validation.choice, type_, "type", STREAM_TYPES, label="Type")
    title = errors.check("title", validation.text_value, title, "title", label="Title", max_length=TITLE_MAX,
                         required=from_form) or ""
    if type_ == "private":
        ticket_price = errors.check("ticketPrice", validation.token_amount, ticket_price, "ticketPrice",
                                    maximum=TICKET_MAX, from_form=from_form)
    elif ticket_price not in (None, ""):
        errors.add("ticketPrice", "Public streams have no ticket price.")
    else:
        ticket_price = None
    starts_at = errors.check("startsAt", _parse_starts_at, starts_at)
    errors.raise_if_any()
    stream = Stream(creator_id=creator.id, type=type_, title=title or f"{creator.display_name} live",
                    ticket_price=ticket_price, starts_at=starts_at,
                    channel=f"{CHANNEL_PREFIX}{secrets.token_urlsafe(12)}")
    if type_ == "private":
        stream.escrow_account_id = ledger.open_escrow(creator.id).id
    db.session.add(stream)
    db.session.commit()
    return stream


def get_stream(stream_id) -> Stream:
    stream = db.session.get(Stream, stream_id) if validation.is_record_id(stream_id) else None
    if stream is None:
        raise NotFound("No such stream.", "stream_not_found")
    return stream


def change_status(user, stream_id: int, action: str) -> Stream:
    """Apply `action` (start, end, cancel) as the stream's creator; commits and
    publishes the new status. `Forbidden` for anyone else, `Conflict` when the
    current status does not allow it. Ending a private show that went live
    settles its tickets; canceling one queues their refunds."""
    stream = get_stream(stream_id)
    if stream.creator_id != user.id:
        raise Forbidden("Only the stream's creator can do that.", "not_stream_owner")
    return _transition(stream.id, action, "creator")


def _transition(stream_id: int, action: str, cancel_reason: str | None) -> Stream:
    from app.goals.pushes import room_changed
    from app.jobs import enqueue
    from app.notifications.jobs import announce_live
    from app.streams import tickets
    from app.streams.jobs import refund_show

    # Lock the row: two clicks (or two instances) must not both transition it, and
    # ticket checkouts (which hold it shared) finish before a show settles or refunds.
    # populate_existing: the row may be loaded already without the lock; the identity
    # map would keep that stale status and every concurrent click would "win".
    try:
        stream = db.session.execute(select(Stream).where(Stream.id == stream_id).with_for_update()
                                    .execution_options(populate_existing=True)).scalar_one()
        allowed_from, to = _TRANSITIONS[action]
        if stream.status not in allowed_from:
            raise Conflict(f"This stream {_STATUS_NOW[stream.status]}, so it cannot be "
                           f"{'started' if action == 'start' else action + 'ed'}.", "invalid_stream_status")
        stream.status = to
        if to == "live":
            stream.started_at = func.now()
        else:
            stream.ended_at = func.now()
        if to == "ended" and stream.type == "private":
            tickets.settle(stream)
        if to == "canceled":
            stream.cancel_reason = cancel_reason
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    db.session.refresh(stream)  # the timestamps the database set
    pushes.stream_status_changed(stream)
    # The room's refresh also tells the creator's goal OBS source: the goal shows once the
    # stream is live and goes once it is over (app/goals).
    room_changed(stream.id)
    if to == "ended" and stream.settlement_transfer_id:  # the ticket money reached the creator's nav
        earnings_changed([stream.creator_id])
    if to == "canceled" and stream.type == "private":
        enqueue(refund_show, stream.id)
    if to == "live":
        # Followers are told by a job, never in this request: its time must not grow with them.
        enqueue(announce_live, stream.id)
    return stream


def cancel_no_shows() -> list[int]:
    """Cancel every scheduled show whose `startsAt` is more than
    `NO_SHOW_GRACE_MINUTES` ago (reason `no_show`); returns their ids. Run by
    the worker's cron; a show started at the last moment is left alone."""
    grace = current_app.config["NO_SHOW_GRACE_MINUTES"]
    due = db.session.scalars(select(Stream.id).where(
        Stream.status == "scheduled", Stream.starts_at.is_not(None),
        Stream.starts_at < func.now() - text(f"interval '{int(grace)} minutes'"))).all()
    db.session.rollback()
    canceled = []
    for stream_id in due:
        try:
            _transition(stream_id, "cancel", "no_show")
            canceled.append(stream_id)
        except Conflict:
            pass  # it went live (or was canceled) in the meantime
    return canceled


def live_since(minutes: int) -> list[int]:
    """Ids of the streams live now that went live in the last `minutes`."""
    return list(db.session.scalars(select(Stream.id).where(
        Stream.status == "live", Stream.started_at > func.now() - text(f"interval '{int(minutes)} minutes'"))
        .order_by(Stream.id)))


def shows_awaiting_refunds() -> list[int]:
    """Canceled private shows whose tickets are not all refunded yet."""
    return list(db.session.scalars(select(Stream.id).where(
        Stream.status == "canceled", Stream.type == "private", Stream.refunded_at.is_(None))))


_LOOK_IT_UP = object()


def can_view(user, stream: Stream, ticket=_LOOK_IT_UP) -> bool:
    """The access rule: the creator always; public streams everyone; private
    shows the holders of a valid (not refunded) ticket. Pass the user's `ticket`
    (or None) when the caller has it already, to skip the lookup."""
    if stream.type == "public":
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if ticket is _LOOK_IT_UP:
        return can_view_as(user.id, stream)
    return user.id == stream.creator_id or (ticket is not None and ticket.status == "valid")


def can_view_as(user_id: int | None, stream: Stream) -> bool:
    """`can_view` for a viewer known only by id (None or 0: logged out), as the media
    server's checks know them (app.streams.media): no user row is read, and no
    query at all for a public stream."""
    from app.streams.tickets import has_valid_ticket

    if stream.type == "public":
        return True
    if not user_id:
        return False
    return user_id == stream.creator_id or has_valid_ticket(user_id, stream.id)


def live_and_upcoming(limit: int = 50) -> list[Stream]:
    """Discover's streams: up to `limit` live ones, the latest to go live first, then up
    to `limit` scheduled ones, the soonest first. Two lists, each with its own limit: a
    crowd of live streams never hides what starts soon, nor the reverse."""
    live = select(Stream).where(Stream.status == "live").order_by(Stream.started_at.desc().nulls_last(),
                                                                  Stream.id.desc())
    scheduled = select(Stream).where(Stream.status == "scheduled").order_by(Stream.starts_at.nulls_last(),
                                                                            Stream.id.desc())
    return [*db.session.scalars(live.limit(limit)), *db.session.scalars(scheduled.limit(limit))]


def live_and_upcoming_of(creator_id: int, limit: int = 20) -> list[Stream]:
    """One creator's live streams, then their scheduled ones, soonest first (their page, /c/<handle>)."""
    return list(db.session.scalars(
        select(Stream).where(Stream.creator_id == creator_id, Stream.status.in_(("live", "scheduled")))
        .order_by(case((Stream.status == "live", 0), else_=1), Stream.starts_at.nulls_last(), Stream.id.desc())
        .limit(limit)))


def streams_of(creator) -> list[Stream]:
    return list(db.session.scalars(select(Stream).where(Stream.creator_id == creator.id)
                                   .order_by(Stream.id.desc()).limit(100)))


def stream_for_channel(channel: str) -> Stream | None:
    if not isinstance(channel, str) or len(channel) > 64:
        return None
    return db.session.scalar(select(Stream).where(Stream.channel == channel))
