"""What alert controls publish after commit: an approved message to the creator's OBS
source (its own alert in the queue), a decision to the creator's own lists (their
`/ws/me`), and a new sound to the OBS source."""
from __future__ import annotations

from sqlalchemy import select

from app.auth.models import User
from app.extensions import db
from app.realtime import fragments
from app.realtime.bus import publish_many, user_channel
from app.tips.pushes import overlay_channel


def message_decided(tip) -> None:
    """The creator approved or hid `tip`'s message (committed): every tab of theirs shows
    the decision; an approved message is queued on their OBS source."""
    from app.alerts.service import APPROVED, settings_of
    messages = [(user_channel(tip.creator_id), fragments.render("alerts/_decided.html", tip=tip))]
    if tip.message_status == APPROVED:
        sender_name = db.session.scalar(select(User.display_name).where(User.id == tip.sender_id))
        messages.append((overlay_channel(tip.creator_id), fragments.render(
            "alerts/_approved_push.html", tip=tip, sender_name=sender_name, sound=settings_of(tip.creator_id).sound)))
    publish_many(messages)


def sound_changed(creator_id: int, sound: str | None) -> None:
    """The creator picked another sound (committed): their open OBS source plays it from now on."""
    publish_many([(overlay_channel(creator_id), fragments.render("alerts/_sound_push.html", sound=sound,
                                                                 push=True))])
