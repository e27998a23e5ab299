"""A creator's alert controls (DESIGN.md §12): what of a tip pops up, and how.

* `alert_min_tokens`: tips under it move money and appear in lists, but don't pop up
  (neither on the stream's or call's page nor on OBS);
* `profanity_filter`: profanity in messages is masked wherever the room or OBS shows
  them (stored raw: the DB, the JSON and the sender's receipt keep what was typed; the
  creator's own feed shows it too, so they know what they approve): `shown_text`;
* `require_approval`: the OBS source shows a tip's message only once the creator
  approved it (`tips.message_status`). What a creator expects, decided here: the alert
  itself (name and amount) plays on OBS at once, so the room's excitement is not held
  back; its message waits as 'pending' and, once approved, plays on OBS as an alert
  of its own, queued like any other. Hidden: never shown on OBS. A decision is final
  (the other one is 409 `message_decided`). Only tips that pop up and carry a message
  wait: there is nothing else to approve. The viewers' own page overlay is not held
  (it is the room, not the broadcast), but it is masked;
* `alert_sound`: the OBS source's sound, one of `SOUNDS` (None: silent).

The tip path reads the settings once per tip through a per-process cache of
`CACHE_SECONDS`: a change is seen at once by the process that made it and within
that time by the others.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import text

from app import validation
from app.auth.service import require_creator
from app.errors import Conflict, Forbidden, NotFound
from app.extensions import db

# The shipped sounds (static/sounds/<name>.ogg), in the order the settings list them.
SOUNDS = ("chime", "coin", "bell", "pop")
CACHE_SECONDS = 2.0
PENDING, APPROVED, HIDDEN = "pending", "approved", "hidden"
DECISIONS = {"approve": APPROVED, "hide": HIDDEN}


@dataclass(frozen=True)
class AlertSettings:
    min_tokens: int = 0
    profanity_filter: bool = False
    require_approval: bool = False
    sound: str | None = None

    def to_dict(self) -> dict:
        return {"minTokens": self.min_tokens, "profanityFilter": self.profanity_filter,
                "requireApproval": self.require_approval, "sound": self.sound}

    def pops_up(self, amount: int) -> bool:
        """Whether a tip of `amount` tokens pops up (its overlay and OBS alert)."""
        return amount >= self.min_tokens


_settings: dict[int, tuple[float, AlertSettings]] = {}
_settings_lock = threading.Lock()


def settings_of(creator_id: int) -> AlertSettings:
    """The creator's alert controls (defaults for an unknown id), read at most once per
    `CACHE_SECONDS` per process: every tip and every room message asks."""
    now = time.monotonic()
    cached = _settings.get(creator_id)
    if cached and cached[0] > now:
        return cached[1]
    row = db.session.execute(
        text("SELECT alert_min_tokens, profanity_filter, require_approval, alert_sound FROM users WHERE id = :id"),
        {"id": creator_id}).one_or_none()
    found = AlertSettings(*row) if row else AlertSettings()
    with _settings_lock:
        _settings[creator_id] = (now + CACHE_SECONDS, found)
    return found


def forget_settings(creator_id: int | None = None) -> None:
    """Drop this process's cached settings of one creator (all: None)."""
    with _settings_lock:
        if creator_id is None:
            _settings.clear()
        else:
            _settings.pop(creator_id, None)


def current_settings(creator) -> AlertSettings:
    """The creator's settings as stored now (the settings page and API; no cache)."""
    return AlertSettings(creator.alert_min_tokens or 0, bool(creator.profanity_filter),
                         bool(creator.require_approval), creator.alert_sound)


def update_settings(creator, min_tokens, profanity_filter, require_approval, sound=..., *,
                    from_form: bool = False) -> AlertSettings:
    """Set the creator's alert controls; commits, then tells their OBS source the sound.

    `min_tokens`: 0..MAX_TIP_TOKENS (a JSON integer; a form's digits with `from_form`);
    the two flags JSON booleans; `sound` one of `SOUNDS` or None (silent), left as it is
    when not given (`...`). Raises `Forbidden` (not_a_creator) and `InvalidValue` (422,
    every bad field in `errors`, the first as `field`)."""
    require_creator(creator, "Only creators have alerts.")
    errors = validation.Errors()
    minimum = errors.check("minTokens", validation.token_amount, min_tokens, "minTokens", minimum=0,
                           maximum=current_app.config["MAX_TIP_TOKENS"], from_form=from_form)
    for field, value in (("profanityFilter", profanity_filter), ("requireApproval", require_approval)):
        if not isinstance(value, bool):
            errors.add(field, f"{field} must be true or false.")
    if sound is not ... and sound is not None and (not isinstance(sound, str) or sound not in SOUNDS):
        errors.add("sound", f"sound must be one of: {', '.join(SOUNDS)} (or null for none).")
    errors.raise_if_any()
    before = current_settings(creator)
    creator.alert_min_tokens, creator.profanity_filter, creator.require_approval = minimum, profanity_filter, \
        require_approval
    if sound is not ...:
        creator.alert_sound = sound
    db.session.commit()
    forget_settings(creator.id)
    after = current_settings(creator)
    if after.sound != before.sound:
        from app.alerts import pushes
        pushes.sound_changed(creator.id, after.sound)
    return after


# ---- what the room shows ----------------------------------------------------------------

_filter = None
_filter_lock = threading.Lock()


def _profanity():
    """glin-profanity's English filter, built once per process (loading its word list
    takes a while); it keeps no state between checks."""
    global _filter
    if _filter is None:
        with _filter_lock:
            if _filter is None:
                from glin_profanity import Filter
                _filter = Filter({"languages": ["english"], "replace_with": "***"})
    return _filter


def mask_profanity(value: str) -> str:
    """`value` with each profane word replaced by "***" (glin-profanity's list and its
    whole-word matching: "Scunthorpe", "assassin" and "class" stay as they are)."""
    if not value:
        return value
    result = _profanity().check_profanity(value)
    return result["processed_text"] if result.get("contains_profanity") else value


def shown_text(value: str, settings: AlertSettings) -> str:
    """How a message typed in the creator's room is shown: masked when their filter is on."""
    return mask_profanity(value) if settings.profanity_filter else value


def room_message(tip) -> str:
    """A tip's message as its creator's room (the overlay, the recent tips, the chat, OBS)
    shows it: masked when their filter is on."""
    return shown_text(tip.message or "", settings_of(tip.creator_id))


def message_status_for(creator_id: int, amount: int, message: str) -> str | None:
    """A new tip's `message_status`: 'pending' when its creator approves OBS messages
    and the tip pops up with a message; None when nothing waits for approval."""
    settings = settings_of(creator_id)
    return PENDING if message and settings.require_approval and settings.pops_up(amount) else None


# ---- approval ---------------------------------------------------------------------------

@dataclass
class Decision:
    tip: object
    changed: bool  # False: a replay of the decision already made


def decide_message(creator, tip_id, decision: str) -> Decision:
    """The creator approves ("approve") or hides ("hide") a tip's pending message for
    their OBS source; commits, then publishes (the approved message is queued on OBS,
    the creator's feeds show the decision).

    Idempotent: the same decision again changes nothing (`changed` False). Raises
    `Forbidden` (not_a_creator; `not_your_tip` for another creator's tip), `NotFound`
    (tip_not_found), `Conflict` (`approval_not_needed`: the tip never waited;
    `message_decided`: the other decision was made, it cannot flip)."""
    from app.tips.models import Tip

    require_creator(creator, "Only creators approve tip messages.")
    validation.record_id(tip_id, "tipId", "tipId must be a tip id.")
    status = DECISIONS[decision]
    # One statement decides: of two decisions racing, exactly one finds the tip pending.
    row = db.session.execute(text(
        "UPDATE tips SET message_status = :s WHERE id = :id AND creator_id = :c AND message_status = 'pending' "
        "RETURNING id"), {"s": status, "id": tip_id, "c": creator.id}).one_or_none()
    db.session.commit()
    tip = db.session.get(Tip, tip_id)
    if tip is not None:
        db.session.refresh(tip)
    if row is not None:
        from app.alerts import pushes
        pushes.message_decided(tip)
        return Decision(tip, changed=True)
    if tip is None:
        raise NotFound("No such tip.", "tip_not_found")
    if tip.creator_id != creator.id:
        raise Forbidden("That tip was sent to another creator.", "not_your_tip")
    if tip.message_status is None:
        raise Conflict("That tip's message needs no approval.", "approval_not_needed")
    if tip.message_status != status:
        raise Conflict(f"That message was already {tip.message_status}; it can't be changed.",
                       "message_decided", messageStatus=tip.message_status)
    return Decision(tip, changed=False)


def tip_dict(tip) -> dict:
    """The tip as the approval API answers it: the tip's JSON and its message status."""
    return {**tip.to_dict(), "messageStatus": tip.message_status}
