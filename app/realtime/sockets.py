"""WebSocket endpoints (flask-sock): `/ws/channels/<channel>` (a stream's or a
call's), `/ws/me`, `/ws/overlay/<secret>`, and `/ws/calls/<id>/signal` (a call's
WebRTC signaling, see signaling.py).

Every check — Origin, identity, access — runs in `before_request`, i.e.
before the WebSocket handshake: a refused client gets an HTTP error and no
data at all. Browsers authenticate with the session cookie; other clients
with `Authorization: Bearer <token>` on the handshake (see `create_app`).

On every (re)connect the socket first sends the current state (status,
viewer count, recent tips, balance), so a message missed while disconnected
never leaves a page stale. The state is read *after* subscribing to the hub,
so an event committed while the socket connects is in the state, or
delivered, or both — never neither. After that it only relays hub messages
(and re-sends the state when the hub says it missed events during a Redis
outage); the DB session is released so a thousand idle sockets hold no
connections.
"""
from __future__ import annotations

import contextlib
import socket
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, render_template, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from app.errors import AppError, Conflict, Forbidden, NotFound, Unauthorized, error_response
from app.extensions import db, sock
from app.realtime import events
from app.realtime.bus import credential_channel, user_channel

bp = Blueprint("realtime", __name__)
CALL_CHANNEL_PREFIX = "c-"  # app.calls.service names call channels so; streams use "s-"

def hub():
    return current_app.extensions["realtime_hub"]


def _origin_allowed() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser; such clients must still authenticate
    # Behind a proxy request.host is the public host:port (TRUSTED_PROXIES, X-Forwarded-Host).
    try:
        return urlsplit(origin).netloc == request.host
    except ValueError:  # not a URL at all ("http://["): no site of ours
        return False


@bp.before_request
def _guard():
    # Decline permessage-deflate: every message is a small HTML fragment sent to
    # many sockets, so one pre-built frame for all of them (see hub.text_frame)
    # beats compressing it again per socket (and ~100 KB of zlib state each).
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    if not _origin_allowed():
        return error_response(Forbidden("WebSocket connections from other sites are refused.", "bad_origin"))
    endpoint = request.endpoint
    if endpoint == "realtime.channel_socket" and request.view_args["channel"].startswith(CALL_CHANNEL_PREFIX):
        # A call's channel: its two participants only.
        from app.calls.display import call_for_channel
        call = call_for_channel(request.view_args["channel"])
        if call is None:
            return error_response(NotFound("No such channel.", "channel_not_found"))
        if not current_user.is_authenticated:
            return error_response(Unauthorized("Log in to follow your call.", "unauthorized"))
        if current_user.id not in (call.fan_id, call.creator_id):
            return error_response(Forbidden("Only the two people on a call can follow it.", "not_a_participant"))
        g.call_id = call.id
    elif endpoint == "realtime.channel_socket":
        from app.streams.service import can_view, stream_for_channel
        stream = stream_for_channel(request.view_args["channel"])
        if stream is None:
            return error_response(NotFound("No such channel.", "channel_not_found"))
        if not can_view(current_user, stream):
            return error_response(Forbidden("You don't have access to this stream.", "no_access"))
        g.stream = stream
    elif endpoint == "realtime.me_socket":
        if not current_user.is_authenticated:
            return error_response(Unauthorized("Log in to receive your notifications.", "unauthorized"))
    elif endpoint == "realtime.overlay_socket":
        from app.tips.service import creator_for_overlay
        creator = creator_for_overlay(request.view_args["secret"])
        if creator is None:
            return error_response(NotFound("No such overlay.", "overlay_not_found"))
        g.overlay_creator_id = creator.id
    elif endpoint == "realtime.call_signal_socket":
        if not current_user.is_authenticated:
            return error_response(Unauthorized("Log in to join your call.", "unauthorized"))
        from app.calls import service as calls
        try:
            call = calls.get_call_for(current_user, request.view_args["call_id"])
        except AppError as err:
            return error_response(err)
        if call.status not in calls.OPEN_STATUSES:
            return error_response(Conflict(f"This call is {call.status}.", "call_over"))
        g.call_id, g.call_party = call.id, "fan" if current_user.id == call.fan_id else "creator"
    return None


def credential_channels() -> tuple[str, ...]:
    """The channel announcing the end of the session or token this socket was
    opened with (none for an anonymous one). Authentication (create_app's
    `_authenticate` for tokens, auth.sessions for cookies) names them in `g`."""
    if g.get("api_token_id"):
        return (credential_channel("token", g.api_token_id),)
    if current_user.is_authenticated and g.get("session_id"):  # loads the session's user if no one has yet
        return (credential_channel("session", g.session_id),)
    return ()


def _pump(ws, channels: tuple[str, ...], render_state=None) -> None:
    """Subscribe, send `render_state()`, then relay this socket's hub messages
    until either side goes away, or the socket's session or token ends."""
    from app.realtime.hub import ENDED, RESYNC, WAKE

    channels += credential_channels()
    db.session.remove()  # hold no DB connection while the hub subscribes (or for the socket's lifetime)
    sub = hub().subscribe(channels)
    try:
        state = _state(render_state)
        if state:
            ws.send(state)
        while ws.connected:
            message = sub.queue.get()  # no timeout: the hub WAKEs idle inboxes every second
            if sub.dropped:
                # Too slow to keep up: drop it rather than hold everyone else back.
                close(ws, 1013, "Too slow; reconnect to resync.")
                break
            if message is WAKE:
                continue
            if message is ENDED:
                close(ws, 1008, "Your session has ended; log in again.")
                break
            if message is RESYNC:
                state = _state(render_state)
                if state:
                    ws.send(state)
                continue
            if not ws.connected:
                break
            # The hub's ready-made frame, the same bytes for every socket (no extension
            # was negotiated, see `_guard`): written as is, past wsproto's per-socket framing.
            ws.sock.sendall(message)
    except (ConnectionClosed, OSError):
        pass
    finally:
        db.session.remove()
        hub().unsubscribe(sub)


def close(ws, code: int, message: str, wait: float = 2.0) -> None:
    """Close `ws` from our side: send the close frame, wait (briefly) for the
    browser's answer, then end the TCP connection, as RFC 6455 asks of a
    server. Left open, the development server writes its HTTP response after
    our close frame, which browsers report as "Invalid frame header"."""
    try:
        ws.close(reason=code, message=message)
    except (ConnectionClosed, OSError):
        return
    ws.thread.join(wait)
    with contextlib.suppress(OSError):
        ws.sock.shutdown(socket.SHUT_RDWR)


def _state(render_state) -> str | None:
    """The socket's current state, read in a fresh DB session (so it sees every
    commit up to now), which is released right after."""
    if render_state is None:
        return None
    try:
        return render_state()
    finally:
        db.session.remove()


@sock.route("/ws/channels/<channel>", bp=bp)
def channel_socket(ws, channel):
    from app.streams.service import stream_for_channel
    from app.tips.service import recent_tips

    if g.get("call_id"):
        call_id = g.call_id

        def call_state():  # the call page's state panel as it is now
            from app.calls.models import Call
            return render_template("calls/_sync.html", call=db.session.get(Call, call_id))
        _pump(ws, (channel,), call_state)
        return

    def state():  # `_guard` checked the channel exists and this user may watch it
        stream = stream_for_channel(channel)
        return render_template("streams/_sync.html", stream=stream, recent=recent_tips(stream_id=stream.id),
                               viewers=hub().viewer_count(channel))
    _pump(ws, (channel,), state)


@sock.route("/ws/me", bp=bp)
def me_socket(ws):
    from app.auth.models import User
    from app.calls.display import pending_requests
    from app.tips.service import recent_tips
    from app.wallet.service import wallet_balance
    user_id = current_user.id

    def state():
        user = db.session.get(User, user_id)
        return render_template(
            "realtime/_me_sync.html", balance=wallet_balance(user),
            feed=recent_tips(creator_id=user.id) if user.is_creator else None,
            unseen=events.unseen_tips(user.id) if user.is_creator else None,
            call_requests=pending_requests(user.id) if user.is_creator else None)
    _pump(ws, (user_channel(user_id),), state)


@sock.route("/ws/overlay/<secret>", bp=bp)
def overlay_socket(ws, secret):
    _pump(ws, (f"overlay:{g.overlay_creator_id}",))


@sock.route("/ws/calls/<int:call_id>/signal", bp=bp)
def call_signal_socket(ws, call_id):
    from app.realtime import signaling
    signaling.serve(ws, g.call_id, g.call_party, credential_channels())
