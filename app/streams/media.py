"""Video through a media server: the app is its gatekeeper.

We do not build a media server. The creator publishes with OBS (RTMP/WHIP) at
the path `stream/<stream id>`, and viewers play HLS from
`MEDIA_HLS_BASE_URL/stream/<id>/index.m3u8`. Two media servers are supported,
both asking `decide` the same two questions:

* **nginx + libnginx-mod-rtmp** (`deploy/nginx-rtmp.conf`, started by `make
  run` when installed): `on_publish` / `on_update` POST the RTMP stream name
  and its query as a form to /media/nginx/publish (`nginx_publish`),
  `on_publish_done` to /media/nginx/publish-done; every HLS playlist and
  segment request is checked by `auth_request` against /media/nginx/play
  (`nginx_read`) with the viewer's token in `Authorization: Bearer`.
* **MediaMTX**, through its external HTTP auth hook (`authMethod: http`,
  `authHTTPAddress: <app>/media/auth`): it POSTs
  ``{user, password, token, ip, action, path, protocol, id, query}``
  (`authorize`).

The rules:

* `publish` is allowed only with the stream's creator's secret stream key
  (the `?token=`/`?key=` of the stream name, the password or the bearer
  token) and only while the stream is scheduled or live;
* `read` (HLS, WebRTC, RTSP, …) is allowed only with a playback token
  (`playback_token`) for that very stream that has not expired, whose holder
  still has access when the media server asks (a refunded ticket stops
  working), and only while the stream is live;
* everything else (`playback` of recordings, `api`, `metrics`, `pprof`) is refused.

Playback tokens are signed by the app (itsdangerous, SECRET_KEY, their own
salt), carry the stream id and the viewer's user id (0 when logged out) and
expire after `PLAYBACK_TOKEN_TTL_SECONDS`; the player fetches a fresh one
at half life.

Whether the creator's encoder is connected (`Stream.broadcasting_since`) is
told by the media server too: set by an allowed publish, cleared by nginx's
`on_publish_done` (MediaMTX has no such hook: with it the flag stays set once
a broadcast began). It only changes the player's wording ("the creator is
offline" vs the video), pushed to viewers as it changes; nothing about
access or money depends on it, so an unauthenticated publish-done can at
worst show "offline" until the next `on_update` (10 s) sets it back.
"""
from __future__ import annotations

import secrets
from urllib.parse import parse_qs

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, update

from app import validation
from app.auth.models import User
from app.auth.service import require_creator
from app.errors import Conflict, Forbidden
from app.extensions import db
from app.streams.models import Stream

PATH_PREFIX = "stream/"
READ_ACTIONS = ("read",)


def media_path(stream: Stream) -> str:
    return f"{PATH_PREFIX}{stream.id}"


def playback_url(stream: Stream) -> str | None:
    """Where the stream's HLS playlist is, or None when no media server is configured."""
    base = current_app.config["MEDIA_HLS_BASE_URL"].rstrip("/")
    return f"{base}/{media_path(stream)}/index.m3u8" if base else None


def obs_settings(stream: Stream, creator) -> dict | None:
    """What the creator pastes into OBS ("Custom" service) for this stream: OBS
    publishes to `<server>/<stream key>`, i.e. path `stream/<id>` with the
    secret in the `token` query. None when no media server is configured."""
    base = current_app.config["MEDIA_INGEST_URL"].rstrip("/")
    if not base:
        return None
    return {"server": f"{base}/{PATH_PREFIX.rstrip('/')}", "key": f"{stream.id}?token={stream_key(creator)}"}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="playback-token")


def playback_token(user, stream: Stream) -> str:
    """A short-lived token that lets this viewer read this stream from the media server.
    Call only for a viewer with access (`can_view`)."""
    user_id = user.id if getattr(user, "is_authenticated", False) else 0
    return _serializer().dumps({"s": stream.id, "u": user_id})


def issue_playback(user, stream: Stream) -> dict:
    """What the player needs to read a live stream: a fresh playback token, the
    playlist URL and the token's lifetime. 403 `no_access` without access, 409
    `not_live` once the stream is not live (the player stops there)."""
    from app.streams.service import can_view

    if not can_view(user, stream):
        raise Forbidden("You don't have access to this stream.", "no_access")
    if stream.status != "live":
        raise Conflict("This stream is not live.", "not_live")
    return {"token": playback_token(user, stream), "url": playback_url(stream),
            "expiresIn": current_app.config["PLAYBACK_TOKEN_TTL_SECONDS"]}


def stream_key(creator) -> str:
    """The creator's stream key, created on first use."""
    if not creator.stream_key:
        return regenerate_stream_key(creator)
    return creator.stream_key


def regenerate_stream_key(creator) -> str:
    """Replace the key: the old one stops working for new publishes at once; commits."""
    require_creator(creator, "Only creators have a stream key.")
    creator.stream_key = f"sk_{secrets.token_urlsafe(24)}"
    db.session.commit()
    return creator.stream_key


def _stream_for_path(path) -> Stream | None:
    if not isinstance(path, str) or not path.startswith(PATH_PREFIX):
        return None
    stream_id = validation.ascii_int(path[len(PATH_PREFIX):])
    return db.session.get(Stream, stream_id) if stream_id else None


def _credentials(request: dict) -> list[str]:
    """Every secret the client may have presented: token, password, `token`/`key` query."""
    query = request.get("query") if isinstance(request.get("query"), str) else ""
    parsed = parse_qs(query[:2048])
    found = [request.get("token"), request.get("password"), *parsed.get("token", []), *parsed.get("key", [])]
    return [c for c in found if _is_secret(c)]


def _is_secret(value) -> bool:
    """Could `value` be a stream key or a playback token? (A string of sane length UTF-8 can carry.)"""
    return isinstance(value, str) and 0 < len(value) <= 512 and _encodable(value)


def _encodable(value: str) -> bool:
    """False for strings JSON allows but UTF-8 can't carry (lone surrogates, "\\ud800")."""
    try:
        value.encode()
        return True
    except UnicodeEncodeError:
        return False


def decide(action, stream: Stream | None, credentials: list[str]) -> tuple[bool, str]:
    """The media server's question, answered: may the holder of `credentials`
    `action` ("publish" or "read") this stream now? (allowed, reason code)."""
    from app.streams.service import can_view_as

    if stream is None:
        return False, "unknown_path"
    if action == "publish":
        if stream.status not in ("scheduled", "live"):
            return False, "stream_closed"
        creator = db.session.get(User, stream.creator_id)
        key = creator.stream_key if creator else None
        if key and any(secrets.compare_digest(key.encode(), c.encode()) for c in credentials):
            return True, "ok"
        return False, "bad_stream_key"
    if action in READ_ACTIONS:
        if stream.status != "live":
            return False, "not_live"
        for credential in credentials:
            try:
                claims = _serializer().loads(credential, max_age=current_app.config["PLAYBACK_TOKEN_TTL_SECONDS"])
            except SignatureExpired:
                return False, "token_expired"
            except BadSignature:
                continue
            if not isinstance(claims, dict) or claims.get("s") != stream.id or not isinstance(claims.get("u"), int):
                return False, "token_for_another_stream"
            if not can_view_as(claims["u"], stream):
                return False, "no_access"
            return True, "ok"
        return False, "bad_token"
    return False, "action_not_allowed"


def authorize(request: dict) -> tuple[bool, str]:
    """MediaMTX's question (its auth hook's JSON body), answered: (allowed, reason code)."""
    stream = _stream_for_path(request.get("path"))
    allowed, reason = decide(request.get("action"), stream, _credentials(request))
    if allowed and request.get("action") == "publish":
        set_broadcasting(stream, True)
    return allowed, reason


# ---- nginx-rtmp ---------------------------------------------------------------------

RTMP_APPLICATION = "stream"  # rtmp://<host>:<port>/stream, the `application` of deploy/nginx-rtmp.conf


def _rtmp_stream(form) -> Stream | None:
    """The stream an nginx-rtmp callback is about: application `stream`, name `<id>`."""
    if form.get("app") != RTMP_APPLICATION:
        return None
    return _stream_for_path(f"{PATH_PREFIX}{form.get('name')}")


def nginx_publish(form) -> tuple[bool, str]:
    """nginx-rtmp's `on_publish` (call=publish) and `on_update` (call=update_publish)
    for application `stream`: a non-2xx answer refuses the publisher, or drops it
    when it is already publishing (so ending or canceling the show, or a new
    stream key, disconnects the encoder within `notify_update_timeout`). The key
    arrives as the stream name's query (`<id>?token=<key>`), which nginx appends
    to the form. Viewers' `update_play` never happens (`deny play all`)."""
    stream = _rtmp_stream(form)
    credentials = [c for c in (form.get("token"), form.get("key")) if _is_secret(c)]
    allowed, reason = decide("publish", stream, credentials)
    if allowed:
        set_broadcasting(stream, True)
    return allowed, reason


def nginx_publish_done(form) -> None:
    """nginx-rtmp's `on_publish_done`: the encoder went away. Only the player's
    wording changes (see the module docstring)."""
    stream = _rtmp_stream(form)
    if stream is not None:
        set_broadcasting(stream, False)


def nginx_read(uri, authorization, token_query=None) -> tuple[bool, str]:
    """nginx's `auth_request` for one HLS playlist or segment request: the
    normalized URI nginx is about to serve (`/stream/<id>/<file>`, from
    X-Original-URI: `$uri`, so a `..` or an escaped slash cannot point the check
    at another stream than the file served) and the Authorization header the
    player sent (`Bearer <playback token>`); the URI's `token` query (from
    X-Playback-Token) is accepted too, for players that cannot set headers."""
    if not isinstance(uri, str) or not uri.startswith("/") or len(uri) > 2048 or not _encodable(uri):
        return False, "unknown_path"
    stream_path, _, file = uri[1:].rpartition("/")
    if not file or "/" in stream_path[len(PATH_PREFIX):]:
        return False, "unknown_path"
    bearer = authorization[7:].strip() if isinstance(authorization, str) and authorization[:7].lower() == "bearer " \
        else None
    credentials = [c for c in (bearer, token_query) if _is_secret(c)]
    return decide("read", _stream_for_path(stream_path), credentials)


def set_broadcasting(stream: Stream, on: bool) -> None:
    """Record whether the creator's encoder is connected; commits, and tells a live
    stream's viewers when it changed (one UPDATE decides, so concurrent callbacks
    push once)."""
    from app.streams.pushes import player_changed

    changed = db.session.execute(
        update(Stream).where(Stream.id == stream.id,
                             Stream.broadcasting_since.is_(None) if on else Stream.broadcasting_since.isnot(None))
        .values(broadcasting_since=func.now() if on else None)).rowcount
    db.session.commit()
    if changed and stream.status == "live":  # before "live" viewers see "waiting to go live" either way
        db.session.refresh(stream)
        player_changed(stream)
