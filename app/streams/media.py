"""Video through an existing media server (MediaMTX): the app is its gatekeeper.

We do not build a media server. The creator publishes with OBS (RTMP/WHIP)
to MediaMTX at the path `stream/<stream id>`, and viewers play HLS from
`MEDIA_HLS_BASE_URL/stream/<id>/index.m3u8`. MediaMTX asks us about every
publisher and reader through its external HTTP auth hook (`authMethod: http`,
`authHTTPAddress: <app>/media/auth`): it POSTs
``{user, password, token, ip, action, path, protocol, id, query}`` and lets
the client in only on a 2xx answer. `authorize` implements that contract:

* `publish` is allowed only with the stream's creator's secret stream key
  (passed as the RTMP `?token=`/`?key=` query, the password or the bearer
  token) and only while the stream is scheduled or live;
* `read` (HLS, WebRTC, RTSP, …) is allowed only with a playback token
  (`playback_token`) for that very stream that has not expired, whose holder
  still has access when the media server asks (a refunded ticket stops
  working), and only while the stream is live;
* everything else (`playback` of recordings, `api`, `metrics`, `pprof`) is refused.

Playback tokens are signed by the app (itsdangerous, SECRET_KEY, their own
salt), carry the stream id and the viewer's user id (0 when logged out) and
expire after `PLAYBACK_TOKEN_TTL_SECONDS`; the player fetches a fresh one
before then.
"""
from __future__ import annotations

import secrets
from urllib.parse import parse_qs

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app import validation
from app.auth.models import User
from app.auth.service import require_creator
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
    return [c for c in found if isinstance(c, str) and 0 < len(c) <= 512 and _encodable(c)]


def _encodable(value: str) -> bool:
    """False for strings JSON allows but UTF-8 can't carry (lone surrogates, "\\ud800")."""
    try:
        value.encode()
        return True
    except UnicodeEncodeError:
        return False


def authorize(request: dict) -> tuple[bool, str]:
    """MediaMTX's question, answered: (allowed, reason code)."""
    from app.streams.service import can_view

    action = request.get("action")
    stream = _stream_for_path(request.get("path"))
    if stream is None:
        return False, "unknown_path"
    if action == "publish":
        if stream.status not in ("scheduled", "live"):
            return False, "stream_closed"
        creator = db.session.get(User, stream.creator_id)
        key = creator.stream_key if creator else None
        if key and any(secrets.compare_digest(key.encode(), c.encode()) for c in _credentials(request)):
            return True, "ok"
        return False, "bad_stream_key"
    if action in READ_ACTIONS:
        if stream.status != "live":
            return False, "not_live"
        for credential in _credentials(request):
            try:
                claims = _serializer().loads(credential, max_age=current_app.config["PLAYBACK_TOKEN_TTL_SECONDS"])
            except SignatureExpired:
                return False, "token_expired"
            except BadSignature:
                continue
            if not isinstance(claims, dict) or claims.get("s") != stream.id:
                return False, "token_for_another_stream"
            viewer = db.session.get(User, claims.get("u")) if claims.get("u") else None
            if not can_view(viewer, stream):
                return False, "no_access"
            return True, "ok"
        return False, "bad_token"
    return False, "action_not_allowed"
