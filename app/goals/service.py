"""Tip goals (DESIGN.md §12): a stream's creator sets a goal ("New outfit", 5,000
tokens) that the room fills together.

Design note
-----------
Progress is read from the tips, never counted: the gross tokens of the stream's
tips with `id > goal.after_tip_id`. `after_tip_id` is the last value the tips' id
sequence (`tips_id_seq`) had handed out when the goal was set: a tip's id is drawn
(inside its transaction, `ledger_post_request`) before it commits, so the goal
counts exactly the tips whose id was drawn after it was set, whenever they commit.
A tip already in flight when the goal is set (id drawn, not committed) belongs to
before the goal, as it would had it been a millisecond quicker. The stream's own
max tip id would do nearly as well, but a tip to this stream in flight would then
land in one goal or the other depending on which commits first.

So a tip storm cannot make progress drift: it is a SUM over committed rows (the
index `ix_tips_stream_id_id` reads just the goal's tips). `reached_at` is set once,
by the statement `mark_reached` runs (`UPDATE … WHERE reached_at IS NULL AND
progress >= target RETURNING`): whoever it returns a row to announces the goal
reached, and nobody else ever will.

One current goal per stream (`replaced_at IS NULL`, a unique partial index): a new
goal replaces it, and "clear" replaces it with nothing. Both lock the stream's row
first, so two at once queue instead of one failing on the index.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text

from app import validation
from app.errors import Conflict, Forbidden
from app.extensions import db
from app.goals.models import StreamGoal
from app.streams.models import Stream
from app.streams.service import can_view, get_stream

TITLE_MAX = 80
TARGET_MAX = 10_000_000
OPEN_STATUSES = ("scheduled", "live")


@dataclass(frozen=True)
class GoalState:
    """A goal and its progress, as read together."""
    goal: StreamGoal
    progress: int

    @property
    def reached(self) -> bool:
        return self.progress >= self.goal.target_tokens

    @property
    def shown_progress(self) -> int:
        """What the bar fills to: the progress, at most the target."""
        return min(self.progress, self.goal.target_tokens)

    @property
    def percent(self) -> int:
        return self.shown_progress * 100 // self.goal.target_tokens

    def to_dict(self) -> dict:
        g = self.goal
        return {"id": g.id, "title": g.title, "targetTokens": g.target_tokens, "progressTokens": self.progress,
                "reachedAt": g.reached_at.isoformat() if g.reached_at else None}


def goal_title(raw) -> str:
    return validation.text_value(raw, "title", label="Title", max_length=TITLE_MAX)


def goal_target(raw, *, from_form: bool = False) -> int:
    return validation.token_amount(raw, "targetTokens", maximum=TARGET_MAX, from_form=from_form)


def _progress(goal: StreamGoal) -> int:
    return int(db.session.scalar(text(
        "SELECT coalesce(sum(amount), 0) FROM tips WHERE stream_id = :s AND id > :after"),
        {"s": goal.stream_id, "after": goal.after_tip_id}))


def current_goal(stream_id: int) -> GoalState | None:
    """The stream's current goal with its progress (None: no goal)."""
    goal = db.session.scalar(select(StreamGoal).where(StreamGoal.stream_id == stream_id,
                                                      StreamGoal.replaced_at.is_(None)))
    return GoalState(goal, _progress(goal)) if goal else None


def goal_for_viewer(user, stream_id) -> GoalState | None:
    """`current_goal` for someone who may watch the stream. Raises NotFound
    (stream_not_found) and Forbidden (no_access)."""
    stream = get_stream(stream_id)
    if not can_view(user, stream):
        raise Forbidden("You don't have access to this stream.", "no_access")
    return current_goal(stream.id)


def _own_open_stream(user, stream_id) -> Stream:
    """The stream if `user` is its creator. Raises NotFound (stream_not_found), Forbidden
    (not_stream_owner)."""
    stream = get_stream(stream_id)
    if stream.creator_id != getattr(user, "id", None):
        raise Forbidden("Only the stream's creator can set its goal.", "not_stream_owner")
    return stream


def _lock_open(stream: Stream) -> None:
    """Lock the stream's row (goal changes of one stream queue) and check it is scheduled
    or live; Conflict (stream_not_live) otherwise."""
    status = db.session.scalar(select(Stream.status).where(Stream.id == stream.id).with_for_update())
    if status not in OPEN_STATUSES:
        raise Conflict("Goals are for scheduled and live streams; this one is over.", "stream_not_live")


_REPLACE = text("UPDATE stream_goals SET replaced_at = now() WHERE stream_id = :s AND replaced_at IS NULL")
# The last id handed out by the tips' sequence (0 before the first tip): see the design note.
_LAST_TIP_ID = text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM tips_id_seq")


def set_goal(user, stream_id, title, target, *, from_form: bool = False) -> GoalState:
    """Set (or replace) the stream's goal; commits, then queues the room's refresh.
    Raises NotFound (stream_not_found), Forbidden (not_stream_owner), InvalidValue
    (title, targetTokens: every field's error in `errors`), Conflict (stream_not_live)."""
    stream = _own_open_stream(user, stream_id)
    errors = validation.Errors()
    title = errors.check("title", goal_title, title)
    target = errors.check("targetTokens", goal_target, target, from_form=from_form)
    errors.raise_if_any()
    try:
        _lock_open(stream)
        db.session.execute(_REPLACE, {"s": stream.id})
        goal = StreamGoal(stream_id=stream.id, title=title, target_tokens=target,
                          after_tip_id=db.session.scalar(_LAST_TIP_ID))
        db.session.add(goal)
        db.session.flush()
        state = GoalState(goal, _progress(goal))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _room_changed(stream.id)
    return state


def clear_goal(user, stream_id) -> None:
    """Remove the stream's goal (none left: harmless); commits, then queues the room's
    refresh. Raises like `set_goal` (no InvalidValue)."""
    stream = _own_open_stream(user, stream_id)
    try:
        _lock_open(stream)
        db.session.execute(_REPLACE, {"s": stream.id})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _room_changed(stream.id)


_MARK_REACHED = text("""
UPDATE stream_goals g SET reached_at = now()
 WHERE g.id = :g AND g.reached_at IS NULL AND g.replaced_at IS NULL
   AND (SELECT coalesce(sum(amount), 0) FROM tips WHERE stream_id = g.stream_id AND id > g.after_tip_id)
       >= g.target_tokens
RETURNING reached_at""")


def mark_reached(goal_id: int):
    """Set the goal's `reached_at` if its progress has reached the target and nobody set
    it before; commits. Returns the time set when this call set it (the caller
    announces), None otherwise — exactly one caller ever gets a time."""
    reached_at = db.session.scalar(_MARK_REACHED, {"g": goal_id})
    db.session.commit()
    return reached_at


def _room_changed(stream_id: int) -> None:
    from app.goals.pushes import room_changed
    room_changed(stream_id)


def obs_goal(creator_id: int) -> GoalState | None:
    """What the creator's goal OBS source shows: the current goal of their live stream
    (the one that went live last, if several), or None."""
    stream_id = db.session.scalar(
        select(Stream.id).where(Stream.creator_id == creator_id, Stream.status == "live")
        .order_by(Stream.started_at.desc().nulls_last(), Stream.id.desc()).limit(1))
    return current_goal(stream_id) if stream_id else None
