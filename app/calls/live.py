"""Calls' live behaviour (STYLE.md 9): a call's channel (`c-…`) is for its two
participants, and a (re)connect receives the call's state panel; a creator's
share of `/ws/me` is their pending call requests; and each call page's
signaling socket (`/ws/calls/<id>/signal`, signaling.py) is for a participant
while the call is open. What calls publish after commit is in pushes.py:
calls.service imports that, and this module imports calls.service, so one
module for both would be an import loop.
"""
from __future__ import annotations

from flask import Blueprint, Flask, g, render_template, request
from flask_login import current_user

from app.calls import display, service, signaling
from app.calls.models import CHANNEL_PREFIX, Call
from app.errors import AppError, Conflict, Forbidden, Unauthorized, error_response
from app.extensions import db, sock
from app.realtime.channels import channel_not_found, register_channel, register_feed
from app.realtime.sockets import credential_channels

bp = Blueprint("calls_live", __name__)


def init_app(app: Flask) -> None:
    register_channel(app, CHANNEL_PREFIX, _authorize, _on_connect)
    register_feed(app, _call_requests)
    app.register_blueprint(bp)


def _authorize(channel: str) -> int:
    """A call's channel: its two participants only."""
    call = display.call_for_channel(channel)
    if call is None:
        raise channel_not_found()
    if not current_user.is_authenticated:
        raise Unauthorized("Log in to follow your call.", "unauthorized")
    if current_user.id not in (call.fan_id, call.creator_id):
        raise Forbidden("Only the two people on a call can follow it.", "not_a_participant")
    return call.id


def _on_connect(channel: str, call_id: int) -> str:
    """The call page's state panel as it is now."""
    return render_template("calls/_sync.html", call=db.session.get(Call, call_id))


def _call_requests(user) -> str | None:
    if not user.is_creator:
        return None
    return render_template("calls/_requests.html", oob=True, requests=display.pending_requests(user.id))


@bp.before_request
def _join_signaling():
    if not current_user.is_authenticated:
        return error_response(Unauthorized("Log in to join your call.", "unauthorized"))
    try:
        call = service.get_call_for(current_user, request.view_args["call_id"])
    except AppError as err:
        return error_response(err)
    if call.status not in service.OPEN_STATUSES:
        return error_response(Conflict(f"This call is {call.status}.", "call_over"))
    g.call_id, g.call_party = call.id, "fan" if current_user.id == call.fan_id else "creator"
    return None


@sock.route("/ws/calls/<int:call_id>/signal", bp=bp)
def call_signal_socket(ws, call_id):
    signaling.serve(ws, g.call_id, g.call_party, credential_channels())
