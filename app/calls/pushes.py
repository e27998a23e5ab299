"""What calls publish after commit: a call's new state to both call pages (they
share the call's channel) and, while it is a request, the creator's list of
pending requests (their `/ws/me`), and a Web Push of each new request to the
creator's devices that have `calls` on (app/push). The fan's new balance is the
wallet's push (wallet.pushes)."""
from __future__ import annotations

from app.auth.models import User
from app.extensions import db
from app.push.service import page_path, push_to_users
from app.realtime import fragments
from app.realtime.bus import publish, publish_many, user_channel


def call_requested(call) -> None:
    """The creator's notification of a new call request (their /ws/me)."""
    publish(user_channel(call.creator_id), fragments.render("calls/_request_push.html", call=call))
    fan = db.session.get(User, call.fan_id)
    push_to_users([call.creator_id], "calls", "Video call request",
                  f"{fan.display_name} wants a video call at {call.rate:,} tokens per minute.",
                  page_path("calls.show", call_id=call.id), tag=f"call-{call.id}")


def call_changed(call) -> None:
    """The call's new state, for both call pages (they share the call's channel); while
    the change is about a request (accepted, declined, withdrawn, expired), also the
    creator's refreshed list of pending requests."""
    messages = call_messages(call)
    if call.accepted_at is None or call.status == "active" and call.blocks_charged <= 1:
        messages.append((user_channel(call.creator_id), fragments.render("calls/_request_push.html", call=call)))
    publish_many(messages)


def call_messages(call, figures_only: bool = False) -> list[tuple[str, str]]:
    """`call_changed`'s messages, for callers that publish many calls in one round trip
    (the meter). `figures_only`: just the figures (a block was charged, the status and
    buttons are unchanged) — the meter's usual case, and a fraction of the panel's cost."""
    if figures_only:
        return [(call.channel, fragments.render("calls/_figures.html", call=call, oob=True))]
    return [(call.channel, fragments.render("calls/_state.html", call=call, oob=True))]


def receipts_changed(call) -> None:
    """A call's receipts changed without its state (a block was refunded). Receipts are
    each party's own view, fetched by their page (calls/_activity.html) whenever its
    state panel arrives, so the panel is what is pushed."""
    publish_many(call_messages(call))
