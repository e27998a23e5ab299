"""WebSocket transport (flask-sock): the checks every socket gets, the loop that
relays hub messages to a socket, and the two generic endpoints,
`/ws/channels/<channel>` (a channel some feature serves, channels.py) and
`/ws/me` (one user's own feed, to which several features contribute).

Every check — Origin, identity, access — runs in `before_request`, i.e.
before the WebSocket handshake: a refused client gets an HTTP error and no
data at all. The Origin check applies to every WebSocket route of the app,
including the ones features declare themselves; identity comes from
`create_app`'s `_authenticate` (the session cookie for browsers,
`Authorization: Bearer <token>` on the handshake for other clients); access is
the feature's to decide (a channel's `authorize`, or its own route's hook).

On every (re)connect the socket first sends the current state (status,
viewer count, recent tips, balance), so a message missed while disconnected
never leaves a page stale. The state is read *after* subscribing to the hub,
so an event committed while the socket connects is in the state, or
delivered, or both — never neither. After that it only relays hub messages
(and re-sends the state when the hub says it missed events during a Redis
outage); the DB session is released so a thousand idle sockets hold no
connections. Under gevent (production's worker) a socket that only relays is
handed to the hub once its state is sent, and its request ends: the hub writes
to it and reads from it itself (detached.py), so an open socket costs a small
object instead of two greenlets and a request.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import threading
from functools import partial
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from app.auth.models import User
from app.errors import AppError, Forbidden, Unauthorized, error_response
from app.extensions import db, sock
from app.realtime import detached
from app.realtime.bus import credential_channel, user_channel
from app.realtime.channels import channel_not_found, registry
from app.realtime.hub import ENDED, RESYNC, WAKE

bp = Blueprint("realtime", __name__)
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """The transport's checks for every socket of `app`, and its endpoints. Call
    after the app's other `before_request` hooks are registered: a socket's
    Origin and access are checked once its credentials are known."""
    app.before_request(_guard)
    app.register_blueprint(bp)
    app.config["SOCK_SERVER_OPTIONS"].setdefault("thread_class", ReaderThread)


def hub_served(view):
    """Mark a WebSocket route (under its `@sock.route`) whose socket only `serve`
    handles: under gevent the hub takes such a socket over once its state is
    sent, and reads it itself, so no reader thread is started for it."""
    view.hub_served = True
    return view


class ReaderThread(threading.Thread):
    """simple-websocket's reader thread (SOCK_SERVER_OPTIONS' `thread_class`),
    except for a socket the hub will read (`_guard` decides, per handshake)."""

    def start(self) -> None:
        if not g.get("hub_reads"):
            super().start()


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


def _guard():
    """Every WebSocket handshake, whichever feature declared the route."""
    if request.url_rule is None or not request.url_rule.websocket:
        return None
    # Decline permessage-deflate: every message is a small HTML fragment sent to
    # many sockets, so one pre-built frame for all of them (see hub.text_frame)
    # beats compressing it again per socket (and ~100 KB of zlib state each).
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    if not _origin_allowed():
        return error_response(Forbidden("WebSocket connections from other sites are refused.", "bad_origin"))
    view = current_app.view_functions.get(request.endpoint)
    g.hub_reads = getattr(view, "hub_served", False) and detached.available()
    return None


@bp.before_request
def _join():
    """Who may open this blueprint's sockets: a channel's feature decides (its
    `authorize`); `/ws/me` is anyone's own, once logged in."""
    if request.endpoint == "realtime.channel_socket":
        name = request.view_args["channel"]
        channel = registry().channel(name)
        if channel is None:
            return error_response(channel_not_found())
        try:
            g.joined = channel, channel.authorize(name)
        except AppError as err:
            return error_response(err)
    elif request.endpoint == "realtime.me_socket":
        if not current_user.is_authenticated:
            return error_response(Unauthorized("Log in to receive your notifications.", "unauthorized"))
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


def serve(ws, channels: tuple[str, ...], render_state=None, resync_state=None) -> None:
    """Subscribe `ws` to `channels`, send `render_state()` (its current state,
    read in a fresh DB session; None sends nothing), then relay its hub messages
    until either side goes away, or the socket's session or token ends. After a
    Redis outage the state is sent again: `resync_state()` if given (a state that
    must not come from a cache kept current by publishes, which may have failed
    during the outage), else `render_state()`."""
    channels += credential_channels()
    db.session.remove()  # hold no DB connection while the hub subscribes (or for the socket's lifetime)
    sub = hub().subscribe(channels)
    handed_over = False
    try:
        try:
            state = _state(render_state)
        except Exception:  # noqa: BLE001 - e.g. no DB connection free in a join storm
            # After the 101 an exception would make the server write an HTTP 500 into
            # the upgraded socket. Close it as a WebSocket instead: 1011 tells the
            # browser to reconnect, and the reconnect re-sends the state.
            log.exception("realtime: the state of %s could not be read; closing the socket", channels[0])
            close(ws, 1011, "Could not load the live state; reconnect.")
            return
        if state:
            ws.send(state)
        if g.get("hub_reads") and ws.connected:
            ping = current_app.config["SOCK_SERVER_OPTIONS"].get("ping_interval")
            hub().hand_over(sub, detached.Connection(ws.sock, sub, hub().unsubscribe, ping))
            handed_over = True
            ws.connected = False  # flask-sock closes `ws` when we return: not the hub's socket
            return
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
                try:
                    state = _state(resync_state or render_state)
                except Exception:  # noqa: BLE001 - as at connect: close, the reconnect resyncs
                    log.exception("realtime: the state of %s could not be re-read; closing the socket", channels[0])
                    close(ws, 1011, "Could not load the live state; reconnect.")
                    break
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
        if not handed_over:
            hub().unsubscribe(sub)


def close(ws, code: int, message: str, wait: float = 2.0) -> None:
    """Close `ws` from our side: send the close frame, wait (briefly) for the
    browser's answer, then end the TCP connection, as RFC 6455 asks of a
    server. Left open, the development server writes its HTTP response after
    our close frame, which browsers report as "Invalid frame header". When the
    browser closed first, its close frame is being answered by the socket's reader
    thread: wait for that answer to be written before ending the connection."""
    try:
        ws.close(reason=code, message=message)
    except (ConnectionClosed, OSError):
        pass
    if ws.thread.is_alive():  # none for a socket the hub was to read (`ReaderThread`)
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
@hub_served
def channel_socket(ws, channel):
    served, joined = g.joined  # `_join` checked the channel exists and this user may join it
    state = partial(registry().connect_state, served, channel, joined)
    serve(ws, (channel,), state, partial(state, fresh=True))


@sock.route("/ws/me", bp=bp)
@hub_served
def me_socket(ws):
    user_id = current_user.id
    feed = registry().feed

    def state():
        user = db.session.get(User, user_id)
        return "\n".join(share for on_connect in feed if (share := on_connect(user)))
    serve(ws, (user_channel(user_id),), state)
