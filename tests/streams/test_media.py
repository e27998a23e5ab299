"""The MediaMTX external-auth hook (POST /media/auth) and the player's playback token
(GET /streams/<id>/playback-token); see app/streams/media.py for the contract.

/media/auth is called here exactly as MediaMTX calls it: a JSON body
``{user, password, token, ip, action, path, protocol, id, query}``, no cookies,
no CSRF token. Only a 2xx lets the client in.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import itsdangerous.timed
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import text

from app.extensions import db
from app.streams import media, tickets
from app.streams import service as streams
from app.streams.models import Stream
from tests.conftest import fresh_client
from tests.helpers import assert_error, log_in

AUTH = "/media/auth"
HLS_BASE = "http://media.test:8888"
JSON = {"Accept": "application/json"}


# ---- helpers ----------------------------------------------------------------

def mtx_body(action: str, path, *, user: str = "", password: str = "", token: str = "", query: str = "",
             protocol: str | None = None) -> dict:
    """The body MediaMTX POSTs to authHTTPAddress."""
    return {"user": user, "password": password, "token": token, "ip": "203.0.113.7", "action": action,
            "path": path, "protocol": protocol or ("rtmp" if action == "publish" else "hls"),
            "id": None, "query": query}


def ask(client, body):
    """POST the hook like MediaMTX: JSON, no cookies (`client` must be a fresh one), no CSRF."""
    return client.post(AUTH, json=body)


def allowed(resp) -> None:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"ok": True}


def refused(resp, code: str | None = None) -> dict:
    return assert_error(resp, 401, code)


def key_in_db(user_id: int) -> str | None:
    return db.session.scalar(text("SELECT stream_key FROM users WHERE id = :u"), {"u": user_id})


def flip(s: str, at: int) -> str:
    """`s` with the character at `at` replaced by a different base64url character."""
    return s[:at] + ("B" if s[at] == "A" else "A") + s[at + 1:]


@pytest.fixture()
def media_client(new_client):
    """MediaMTX: a client that never logged in (no session cookie)."""
    return new_client()


@pytest.fixture()
def broadcaster(make_creator, make_stream):
    """A creator with a stream key, a scheduled and a live public stream (ids only)."""
    creator = make_creator()
    key = media.stream_key(creator)
    scheduled = make_stream(creator, title="Scheduled")
    live = make_stream(creator, title="Live", live=True)
    return SimpleNamespace(creator=creator, key=key, scheduled_id=scheduled.id, live_id=live.id)


@pytest.fixture()
def private_live(make_creator, make_fan, make_stream):
    """A live private show (price 300) and a fan holding a ticket to it."""
    creator = make_creator()
    show = make_stream(creator, "private", title="VIP", ticket_price=300)
    holder = make_fan(balance=1000)
    tickets.checkout(holder, show)
    streams.change_status(creator, show.id, "start")
    return SimpleNamespace(creator=creator, holder=holder, id=show.id)


# ---- publish ----------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["token", "password", "query_token", "query_key", "query_among_others"])
@pytest.mark.parametrize("which", ["scheduled_id", "live_id"])
def test_publish_with_the_creators_stream_key_is_allowed(media_client, broadcaster, where, which):
    key, path = broadcaster.key, f"stream/{getattr(broadcaster, which)}"
    kwargs = {"token": {"token": key}, "password": {"user": "obs", "password": key},
              "query_token": {"query": f"token={key}"}, "query_key": {"query": f"key={key}"},
              "query_among_others": {"query": f"foo=bar&token={key}&x=1"}}[where]
    allowed(ask(media_client, mtx_body("publish", path, **kwargs)))


@pytest.mark.parametrize("bad", ["wrong", "empty", "truncated", "extended", "case", "in_user_field", "none"])
def test_publish_without_the_right_key_is_refused(media_client, broadcaster, bad):
    key, path = broadcaster.key, f"stream/{broadcaster.live_id}"
    body = {"wrong": mtx_body("publish", path, token="sk_" + "x" * 32),
            "empty": mtx_body("publish", path, token="", password="", query="token="),
            "truncated": mtx_body("publish", path, token=key[:-1]),
            "extended": mtx_body("publish", path, token=key + "x"),
            "case": mtx_body("publish", path, token=key.swapcase()),
            # `user` is not one of the places a secret is read from.
            "in_user_field": mtx_body("publish", path, user=key),
            "none": mtx_body("publish", path)}[bad]
    refused(ask(media_client, body), "bad_stream_key")


def test_publish_with_another_creators_key_is_refused(media_client, broadcaster, make_creator, make_stream):
    other = make_creator()
    other_key = media.stream_key(other)
    own_stream = make_stream(other, title="Other's own").id
    for field in ("token", "password"):
        refused(ask(media_client, mtx_body("publish", f"stream/{broadcaster.live_id}", **{field: other_key})),
                "bad_stream_key")
    refused(ask(media_client, mtx_body("publish", f"stream/{broadcaster.live_id}", query=f"token={other_key}")),
            "bad_stream_key")
    # Their key is fine for their own stream, and ours is not.
    allowed(ask(media_client, mtx_body("publish", f"stream/{own_stream}", token=other_key)))
    refused(ask(media_client, mtx_body("publish", f"stream/{own_stream}", token=broadcaster.key)), "bad_stream_key")


def test_publish_is_refused_before_the_creator_ever_had_a_key(media_client, make_creator, make_stream):
    creator = make_creator()
    stream_id = make_stream(creator, title="Keyless").id
    assert key_in_db(creator.id) is None
    for token in ("", "None", "null", "sk_"):
        refused(ask(media_client, mtx_body("publish", f"stream/{stream_id}", token=token)), "bad_stream_key")


def test_a_playback_token_does_not_let_anyone_publish(media_client, broadcaster):
    viewer_token = media.playback_token(broadcaster.creator, db.session.get(Stream, broadcaster.live_id))
    allowed(ask(media_client, mtx_body("read", f"stream/{broadcaster.live_id}", token=viewer_token)))
    refused(ask(media_client, mtx_body("publish", f"stream/{broadcaster.live_id}", token=viewer_token)),
            "bad_stream_key")


def test_regenerating_the_key_from_settings_retires_the_old_one(client, media_client, broadcaster):
    old, path = broadcaster.key, f"stream/{broadcaster.scheduled_id}"
    allowed(ask(media_client, mtx_body("publish", path, query=f"token={old}")))
    csrf = log_in(client, broadcaster.creator)
    resp = client.post("/creator/settings/stream-key/regenerate", data={"csrf_token": csrf})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    new = key_in_db(broadcaster.creator.id)
    assert new and new != old
    refused(ask(media_client, mtx_body("publish", path, query=f"token={old}")), "bad_stream_key")
    refused(ask(media_client, mtx_body("publish", path, token=old)), "bad_stream_key")
    allowed(ask(media_client, mtx_body("publish", path, query=f"token={new}")))
    allowed(ask(media_client, mtx_body("publish", path, password=new)))


def test_regenerating_the_key_in_the_service_retires_the_old_one(media_client, broadcaster):
    old = broadcaster.key
    new = media.regenerate_stream_key(broadcaster.creator)
    assert new != old and new.startswith("sk_") and key_in_db(broadcaster.creator.id) == new
    refused(ask(media_client, mtx_body("publish", f"stream/{broadcaster.live_id}", token=old)), "bad_stream_key")
    allowed(ask(media_client, mtx_body("publish", f"stream/{broadcaster.live_id}", token=new)))


@pytest.mark.parametrize("action", ["end", "cancel"])
def test_publish_to_an_ended_or_canceled_stream_is_refused_even_with_the_key(media_client, broadcaster, action):
    stream_id = broadcaster.live_id
    allowed(ask(media_client, mtx_body("publish", f"stream/{stream_id}", token=broadcaster.key)))
    streams.change_status(broadcaster.creator, stream_id, action)
    refused(ask(media_client, mtx_body("publish", f"stream/{stream_id}", token=broadcaster.key)), "stream_closed")


def test_publish_to_a_canceled_scheduled_stream_is_refused(media_client, broadcaster):
    streams.change_status(broadcaster.creator, broadcaster.scheduled_id, "cancel")
    refused(ask(media_client, mtx_body("publish", f"stream/{broadcaster.scheduled_id}", token=broadcaster.key)),
            "stream_closed")


@pytest.mark.parametrize("path", [
    "stream/abc", "stream/", "stream", "other/1", "stream/99999999999999999999", "stream/9223372036854775807",
    "stream/0", "stream/-1", "stream/1.0", "stream/ 1", "stream/1e3", "stream/0x10",
    "MISSING", None, 123, 1.5, True, ["stream/1"], {"path": "stream/1"}, "", "/", "x" * 5000,
    # str.isdigit() is True for these, but int() cannot read them.
    "stream/²", "stream/①", "stream/1²",
])
def test_publish_to_an_unknown_or_malformed_path_is_refused_never_500(media_client, broadcaster, path):
    body = mtx_body("publish", path, token=broadcaster.key, query=f"token={broadcaster.key}")
    if path == "MISSING":
        del body["path"]
    refused(ask(media_client, body), "unknown_path")


@pytest.mark.parametrize("shape", ["suffix", "prefix", "trailing_slash", "leading_slash", "upper", "plus"])
def test_paths_that_only_resemble_the_streams_path_are_refused(media_client, broadcaster, shape):
    sid = broadcaster.live_id
    path = {"suffix": f"stream/{sid}x", "prefix": f"xstream/{sid}", "trailing_slash": f"stream/{sid}/",
            "leading_slash": f"/stream/{sid}", "upper": f"STREAM/{sid}", "plus": f"stream/+{sid}"}[shape]
    refused(ask(media_client, mtx_body("publish", path, token=broadcaster.key)), "unknown_path")


# ---- read ----------------------------------------------------------------------------------

def fetch_token(client, stream_id: int) -> dict:
    resp = client.get(f"/streams/{stream_id}/playback-token")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_read_of_a_live_public_stream_with_a_fans_playback_token(client, media_client, broadcaster, make_fan):
    log_in(client, make_fan())
    token = fetch_token(client, broadcaster.live_id)["token"]
    path = f"stream/{broadcaster.live_id}"
    allowed(ask(media_client, mtx_body("read", path, token=token)))
    allowed(ask(media_client, mtx_body("read", path, query=f"token={token}")))
    allowed(ask(media_client, mtx_body("read", path, password=token, protocol="webrtc")))
    allowed(ask(media_client, mtx_body("read", path, query=f"token={token}", protocol="rtsp")))


def test_read_of_a_live_public_stream_with_a_logged_out_viewers_token(media_client, new_client, broadcaster):
    token = fetch_token(new_client(), broadcaster.live_id)["token"]
    allowed(ask(media_client, mtx_body("read", f"stream/{broadcaster.live_id}", token=token)))


def test_read_without_a_token_is_refused(media_client, broadcaster):
    path = f"stream/{broadcaster.live_id}"
    refused(ask(media_client, mtx_body("read", path)), "bad_token")
    refused(ask(media_client, mtx_body("read", path, query="token=")), "bad_token")
    # The creator's stream key is not a playback token.
    refused(ask(media_client, mtx_body("read", path, token=broadcaster.key)), "bad_token")


def test_read_with_a_forged_token_is_refused(media_client, broadcaster, ctx):
    stream = db.session.get(Stream, broadcaster.live_id)
    genuine = media.playback_token(broadcaster.creator, stream)
    path = f"stream/{stream.id}"
    allowed(ask(media_client, mtx_body("read", path, token=genuine)))
    payload, stamp, signature = genuine.split(".")
    forgeries = [
        flip(genuine, genuine.rindex(".") + 1),           # signature changed
        flip(genuine, 1),                                 # claims changed, signature kept
        f"{payload}.{flip(stamp, 0)}.{signature}",        # timestamp changed
        f"{payload}.{stamp}",                             # signature dropped
        f"{payload}.{stamp}.",                            # empty signature
        genuine + "x",
        # Correct salt and claims, wrong secret.
        URLSafeTimedSerializer("not-the-app-secret", salt="playback-token").dumps({"s": stream.id, "u": 0}),
        # Correct secret, another salt (e.g. any other token the app signs).
        URLSafeTimedSerializer(ctx.config["SECRET_KEY"], salt="other-purpose").dumps({"s": stream.id, "u": 0}),
        # Unsigned JSON claims.
        '{"s": %d, "u": 0}' % stream.id,
    ]
    for forged in forgeries:
        assert forged != genuine
        refused(ask(media_client, mtx_body("read", path, token=forged)), "bad_token")
        refused(ask(media_client, mtx_body("read", path, query=f"token={forged}")), "bad_token")


def test_a_token_for_another_stream_is_refused(client, media_client, broadcaster, make_fan, make_stream):
    other_live = make_stream(broadcaster.creator, title="Second live", live=True)
    log_in(client, make_fan())
    token_for_other = fetch_token(client, other_live.id)["token"]
    allowed(ask(media_client, mtx_body("read", f"stream/{other_live.id}", token=token_for_other)))
    refused(ask(media_client, mtx_body("read", f"stream/{broadcaster.live_id}", token=token_for_other)),
            "token_for_another_stream")
    refused(ask(media_client, mtx_body("read", f"stream/{broadcaster.live_id}", query=f"token={token_for_other}")),
            "token_for_another_stream")


def _token_issued_seconds_ago(monkeypatch, user, stream, seconds: int) -> str:
    """A token minted by the app's own `media.playback_token` (its real secret and salt),
    but stamped `seconds` in the past.

    itsdangerous stamps a token with `TimestampSigner.get_timestamp()` and measures its age
    on `loads` with the same method. Patching that method only while the token is
    minted back-dates this one token and nothing else: the check runs against the real
    clock, no global `time.time` is touched, and no test sleeps for the TTL (whose
    minimum is 10 seconds).
    """
    issued_at = int(time.time()) - seconds
    with monkeypatch.context() as m:
        m.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: issued_at)
        token = media.playback_token(user, stream)
    assert itsdangerous.timed.TimestampSigner.get_timestamp.__name__ == "get_timestamp"  # restored
    return token


def test_an_expired_token_is_refused(media_client, broadcaster, ctx, monkeypatch):
    stream = db.session.get(Stream, broadcaster.live_id)
    ttl = ctx.config["PLAYBACK_TOKEN_TTL_SECONDS"]
    path = f"stream/{stream.id}"
    fresh_enough = _token_issued_seconds_ago(monkeypatch, broadcaster.creator, stream, ttl - 30)
    allowed(ask(media_client, mtx_body("read", path, token=fresh_enough)))
    expired = _token_issued_seconds_ago(monkeypatch, broadcaster.creator, stream, ttl + 5)
    refused(ask(media_client, mtx_body("read", path, token=expired)), "token_expired")
    refused(ask(media_client, mtx_body("read", path, query=f"token={expired}")), "token_expired")
    long_gone = _token_issued_seconds_ago(monkeypatch, broadcaster.creator, stream, 30 * 86400)
    refused(ask(media_client, mtx_body("read", path, token=long_gone)), "token_expired")


def test_a_token_only_reads_while_the_stream_is_live(client, media_client, broadcaster, make_fan):
    creator, stream_id = broadcaster.creator, broadcaster.scheduled_id
    fan = make_fan()
    log_in(client, fan)
    resp = client.get(f"/streams/{stream_id}/playback-token", headers=JSON)  # the player gets none before the start…
    assert resp.status_code == 409 and resp.get_json()["code"] == "not_live"
    # … and a token signed anyway (one from before a restart, say) does not read either.
    token = media.playback_token(fan, db.session.get(Stream, stream_id))
    path = f"stream/{stream_id}"
    refused(ask(media_client, mtx_body("read", path, token=token)), "not_live")
    streams.change_status(creator, stream_id, "start")
    allowed(ask(media_client, mtx_body("read", path, token=token)))
    assert fetch_token(client, stream_id)["expiresIn"] > 0
    streams.change_status(creator, stream_id, "end")
    refused(ask(media_client, mtx_body("read", path, token=token)), "not_live")
    resp = client.get(f"/streams/{stream_id}/playback-token", headers=JSON)  # the player stops: no token after the end
    assert resp.status_code == 409 and resp.get_json()["code"] == "not_live"


def test_a_canceled_stream_cannot_be_read(media_client, broadcaster):
    stream = db.session.get(Stream, broadcaster.live_id)
    token = media.playback_token(broadcaster.creator, stream)
    streams.change_status(broadcaster.creator, stream.id, "cancel")
    refused(ask(media_client, mtx_body("read", f"stream/{stream.id}", token=token)), "not_live")


# ---- read: private shows ------------------------------------------------------------------------

def test_a_ticket_holders_token_reads_until_the_show_is_canceled_and_refunded(client, media_client, private_live):
    show = private_live
    log_in(client, show.holder)
    token = fetch_token(client, show.id)["token"]
    path = f"stream/{show.id}"
    allowed(ask(media_client, mtx_body("read", path, token=token)))
    allowed(ask(media_client, mtx_body("read", path, query=f"token={token}")))
    streams.change_status(show.creator, show.id, "cancel")
    assert tickets.refund_show(show.id) == 1
    assert db.session.scalar(text("SELECT status FROM tickets WHERE stream_id = :s"), {"s": show.id}) == "refunded"
    refused(ask(media_client, mtx_body("read", path, token=token)))
    refused(ask(media_client, mtx_body("read", path, query=f"token={token}")))
    # And no new token for them either.
    assert client.get(f"/streams/{show.id}/playback-token").status_code == 403


def test_a_fan_without_a_ticket_gets_no_token_and_a_minted_one_is_refused(client, media_client, private_live,
                                                                         make_fan):
    show = private_live
    stranger = make_fan(balance=1000)
    log_in(client, stranger)
    resp = client.get(f"/streams/{show.id}/playback-token", headers={"Accept": "application/json"})
    body = assert_error(resp, 403, "no_access")
    assert "token" not in body
    # Even a token the app would never have handed them (say, minted by a bug elsewhere)
    # is checked again against the access rule when the media server asks.
    minted = media.playback_token(stranger, db.session.get(Stream, show.id))
    refused(ask(media_client, mtx_body("read", f"stream/{show.id}", token=minted)), "no_access")
    # A logged-out viewer's token (user 0) never opens a private show.
    anonymous = media.playback_token(None, db.session.get(Stream, show.id))
    refused(ask(media_client, mtx_body("read", f"stream/{show.id}", token=anonymous)), "no_access")


def test_logged_out_viewers_get_no_token_to_a_private_show(new_client, private_live):
    assert new_client().get(f"/streams/{private_live.id}/playback-token").status_code == 403


def test_the_creator_gets_a_token_to_their_own_private_show(client, media_client, private_live):
    log_in(client, private_live.creator)
    token = fetch_token(client, private_live.id)["token"]
    allowed(ask(media_client, mtx_body("read", f"stream/{private_live.id}", token=token)))


def test_a_holders_token_does_not_open_another_private_show(client, media_client, private_live, make_stream):
    other = make_stream(private_live.creator, "private", title="Other VIP", ticket_price=300, live=True)
    log_in(client, private_live.holder)
    token = fetch_token(client, private_live.id)["token"]
    refused(ask(media_client, mtx_body("read", f"stream/{other.id}", token=token)), "token_for_another_stream")
    assert client.get(f"/streams/{other.id}/playback-token").status_code == 403


# ---- other actions and garbage ---------------------------------------------------------------------

@pytest.mark.parametrize("action", ["playback", "api", "metrics", "pprof", "Publish", "READ", "read ", "", None,
                                    "MISSING", 1, ["read"], {"action": "read"}])
def test_other_actions_are_refused_even_with_every_credential(media_client, broadcaster, action):
    token = media.playback_token(broadcaster.creator, db.session.get(Stream, broadcaster.live_id))
    for path in (f"stream/{broadcaster.live_id}", f"stream/{broadcaster.scheduled_id}"):
        body = mtx_body("read", path, user="admin", password=broadcaster.key, token=token,
                        query=f"token={token}&key={broadcaster.key}")
        if action == "MISSING":
            del body["action"]
        else:
            body["action"] = action
        refused(ask(media_client, body), "action_not_allowed")


@pytest.mark.parametrize("action", ["api", "metrics", "pprof"])
def test_server_actions_without_a_path_are_refused(media_client, broadcaster, action):
    # MediaMTX asks about api/metrics/pprof with an empty path.
    refused(ask(media_client, mtx_body(action, "", user="admin", password=broadcaster.key)))


def _raw(client, data: str | bytes, content_type="application/json"):
    return client.post(AUTH, data=data, content_type=content_type)


def assert_refused_safely(resp, *echo: str) -> None:
    """Never let in, never crash; whatever we sent is not echoed back."""
    assert resp.status_code in (400, 401), (resp.status_code, resp.get_data(as_text=True)[:300])
    body = resp.get_data(as_text=True)
    for s in echo:
        assert s not in body
    assert "<script" not in body.lower()


def test_bodies_that_are_not_a_json_object_are_refused(media_client, broadcaster):
    key = broadcaster.key
    good = f'{{"action": "publish", "path": "stream/{broadcaster.live_id}", "token": "{key}"}}'
    allowed(_raw(media_client, good))
    for data, ctype in [
        ("not json at all", "application/json"),
        (good, "text/plain"),  # MediaMTX always sends application/json
        (f"action=publish&path=stream/{broadcaster.live_id}&token={key}", "application/x-www-form-urlencoded"),
        (good[:-1], "application/json"),
        ("", "application/json"),
        ("null", "application/json"),
        ("[]", "application/json"),
        (f'["publish", "stream/{broadcaster.live_id}", "{key}"]', "application/json"),
        (f'[{good}]', "application/json"),
        ('"publish"', "application/json"),
        ("42", "application/json"),
        ("true", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        ("[" * 30000 + "]" * 30000, "application/json"),
        ('{"a":' * 10000 + "1" + "}" * 10000, "application/json"),
    ]:
        assert_refused_safely(_raw(media_client, data, ctype), key)


def test_nested_objects_and_numbers_where_strings_belong_are_refused(media_client, broadcaster):
    sid, key = broadcaster.live_id, broadcaster.key
    bodies = [
        {"action": "publish", "path": f"stream/{sid}", "token": {"token": key}, "password": [key],
         "query": {"token": key}},
        {"action": "publish", "path": f"stream/{sid}", "token": [key], "query": [f"token={key}"]},
        {"action": "publish", "path": f"stream/{sid}", "token": 12345, "password": 1.5, "query": 7},
        {"action": "publish", "path": sid, "token": key},
        {"action": "publish", "path": [f"stream/{sid}"], "token": key},
        {"action": "publish", "path": {"stream": sid}, "token": key},
        {"action": {"publish": True}, "path": f"stream/{sid}", "token": key},
        {"action": "read", "path": f"stream/{sid}", "token": None, "password": False, "query": None},
        {"action": "read", "path": f"stream/{sid}", "token": {"s": sid, "u": 0}},
        {"user": 1, "password": 2, "token": 3, "ip": 4, "action": 5, "path": 6, "protocol": 7, "id": 8, "query": 9},
        {},
    ]
    for body in bodies:
        assert_refused_safely(ask(media_client, body), key)


def test_huge_strings_are_refused(media_client, broadcaster):
    sid, key = broadcaster.live_id, broadcaster.key
    for body in [
        mtx_body("publish", f"stream/{sid}", token="x" * 60000),
        mtx_body("publish", f"stream/{sid}", token=key + "x" * 60000),
        mtx_body("publish", f"stream/{sid}", query="token=" + "k" * 60000),
        mtx_body("publish", f"stream/{sid}", query="a=b&" * 15000),
        mtx_body("read", f"stream/{sid}", token="y" * 60000, query="token=" + "z" * 2000),
        mtx_body("publish", "stream/" + "9" * 60000, token=key),
        mtx_body("x" * 60000, f"stream/{sid}", token=key),
    ]:
        resp = ask(media_client, body)
        assert_refused_safely(resp, "x" * 100, "y" * 100, "9" * 100)


def test_a_body_over_the_request_size_limit_is_refused(media_client, broadcaster):
    resp = ask(media_client, mtx_body("publish", f"stream/{broadcaster.live_id}", token=broadcaster.key,
                                      user="u" * 100_000))
    # Over MAX_CONTENT_LENGTH: 413 is the honest answer; anything but 2xx/5xx keeps MediaMTX out.
    assert resp.status_code in (400, 401, 413), resp.status_code


@pytest.mark.parametrize("action", ["publish", "read"])
@pytest.mark.parametrize("field", ["token", "password", "query"])
def test_unencodable_strings_are_refused_not_500(media_client, broadcaster, action, field):
    """JSON may carry a lone UTF-16 surrogate (\\ud800): a valid JSON string, but one
    Python cannot encode to UTF-8. Anyone can POST it to the hook."""
    value = "\\ud800" if field != "query" else "token=\\ud800"
    data = f'{{"action": "{action}", "path": "stream/{broadcaster.live_id}", "{field}": "{value}"}}'
    assert_refused_safely(_raw(media_client, data))


@pytest.mark.parametrize("field", ["path", "token", "password", "query", "action"])
def test_a_nul_byte_anywhere_in_the_body_is_refused_400_invalid_text_in_json(media_client, broadcaster, field):
    """Like every request's: refused before the hook reads it (MediaMTX keeps out anything but a 2xx)."""
    body = mtx_body("publish", f"stream/{broadcaster.live_id}", token=broadcaster.key)
    body[field] = f"{body.get(field) or 'x'}\x00"
    resp = ask(media_client, body)
    assert_error(resp, 400, "invalid_text")
    assert set(resp.get_json()) == {"error", "code"}


@pytest.mark.parametrize("hostile", ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>',
                                     "'; DROP TABLE streams; --", "\x01\x1b[31m", "%00%0d%0aSet-Cookie: x=1"])
def test_nothing_from_the_body_is_reflected(media_client, broadcaster, hostile):
    sid = broadcaster.live_id
    for body in [mtx_body("publish", f"stream/{sid}", user=hostile, password=hostile, token=hostile,
                          query=f"token={hostile}"),
                 mtx_body("read", f"stream/{sid}", token=hostile, query=hostile, protocol=hostile),
                 mtx_body(hostile, f"stream/{sid}"),
                 mtx_body("publish", hostile, token=broadcaster.key)]:
        resp = ask(media_client, body)
        refused(resp)
        assert resp.mimetype == "application/json"
        assert set(resp.get_json()) == {"error", "code"}
        assert hostile not in resp.get_data(as_text=True)
        assert "Set-Cookie" not in resp.headers
    assert db.session.scalar(text("SELECT count(*) FROM streams WHERE id = :i"), {"i": sid}) == 1


def test_the_hook_needs_no_session_or_csrf_and_ignores_a_session(client, media_client, broadcaster, make_fan):
    """A logged-in browser posting to the hook gets no more than MediaMTX does."""
    log_in(client, make_fan())
    path = f"stream/{broadcaster.live_id}"
    refused(client.post(AUTH, json=mtx_body("read", path)), "bad_token")
    refused(client.post(AUTH, json=mtx_body("publish", path)), "bad_stream_key")
    allowed(media_client.post(AUTH, json=mtx_body("publish", path, token=broadcaster.key),
                              headers={"X-CSRFToken": "nonsense"}))
    assert media_client.get(AUTH).status_code == 405


# ---- GET /streams/<id>/playback-token ---------------------------------------------------------------

def test_playback_token_json_without_a_media_server(client, broadcaster, make_fan, ctx):
    log_in(client, make_fan())
    resp = client.get(f"/streams/{broadcaster.live_id}/playback-token")
    assert resp.status_code == 200 and resp.is_json
    body = resp.get_json()
    assert set(body) == {"token", "url", "expiresIn"}
    assert isinstance(body["token"], str) and len(body["token"]) > 20
    assert body["url"] is None
    assert body["expiresIn"] == ctx.config["PLAYBACK_TOKEN_TTL_SECONDS"] == 120
    assert "no-store" in resp.headers.get("Cache-Control", "")


def test_playback_token_for_an_unknown_stream_is_404(client):
    for path in ("/streams/99999999999999/playback-token", "/streams/0/playback-token"):
        assert client.get(path).status_code == 404


@pytest.mark.parametrize("base", [HLS_BASE, HLS_BASE + "/"])
def test_playback_token_json_with_a_media_server(make_app, media_client, broadcaster, make_fan, base):
    media_app = make_app(MEDIA_HLS_BASE_URL=base, PLAYBACK_TOKEN_TTL_SECONDS=60)
    browser = fresh_client(media_app)
    log_in(browser, make_fan())
    body = fetch_token(browser, broadcaster.live_id)
    assert set(body) == {"token", "url", "expiresIn"}
    assert body["url"] == f"{HLS_BASE}/stream/{broadcaster.live_id}/index.m3u8"
    assert body["expiresIn"] == 60
    # Same SECRET_KEY: the token works at the hook of the app MediaMTX talks to.
    allowed(ask(media_client, mtx_body("read", f"stream/{broadcaster.live_id}", token=body["token"])))
    # And a logged-out viewer of the public stream gets the same URL.
    anon = fetch_token(fresh_client(media_app), broadcaster.live_id)
    assert anon["url"] == body["url"] and anon["token"] != body["token"]


# ---- nginx-rtmp's callbacks and auth_request ---------------------------------------------------------

def rtmp_form(stream_id, key=None, call="publish", app="stream", **extra) -> dict:
    """What nginx-rtmp POSTs (form-encoded) to on_publish / on_update / on_publish_done;
    the stream name's query (`?token=<key>`) arrives as its own field."""
    form = {"call": call, "addr": "127.0.0.1", "clientid": "7", "app": app, "flashver": "FMLE/3.0",
            "swfurl": "", "tcurl": f"rtmp://127.0.0.1:1935/{app}", "pageurl": "", "name": str(stream_id),
            "type": "live", **extra}
    if key is not None:
        form["token"] = key
    return form


def nginx_play(client, uri, token=None, query_token=None, scheme="Bearer"):
    headers = {} if uri is None else {"X-Original-URI": uri}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    if query_token is not None:
        headers["X-Playback-Token"] = query_token
    return client.get("/media/nginx/play", headers=headers)


def broadcasting(stream_id: int):
    return db.session.scalar(text("SELECT broadcasting_since FROM streams WHERE id = :s"), {"s": stream_id})


@pytest.mark.parametrize("call", ["publish", "update_publish"])
@pytest.mark.parametrize("which", ["scheduled_id", "live_id"])
def test_nginx_publish_with_the_stream_key_is_allowed_and_marks_the_broadcast(media_client, broadcaster, call, which):
    stream_id = getattr(broadcaster, which)
    resp = media_client.post("/media/nginx/publish", data=rtmp_form(stream_id, broadcaster.key, call=call))
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert broadcasting(stream_id) is not None
    assert media_client.post("/media/nginx/publish-done", data=rtmp_form(stream_id, call="publish_done")).status_code == 204
    assert broadcasting(stream_id) is None


def test_nginx_publish_key_as_key_field_too(media_client, broadcaster):
    form = {**rtmp_form(broadcaster.live_id), "key": broadcaster.key}
    assert media_client.post("/media/nginx/publish", data=form).status_code == 204


@pytest.mark.parametrize("case", ["wrong_key", "no_key", "other_app", "no_app", "name_with_query", "name_path",
                                  "arabic_digits", "unknown_id", "huge_id", "empty_name", "huge_key"])
def test_nginx_publish_refusals_are_403_and_change_nothing(media_client, broadcaster, case):
    sid = broadcaster.live_id
    form = {"wrong_key": rtmp_form(sid, "sk_wrong"), "no_key": rtmp_form(sid),
            "other_app": rtmp_form(sid, broadcaster.key, app="live"), "no_app": rtmp_form(sid, broadcaster.key, app=""),
            "name_with_query": rtmp_form(f"{sid}?token={broadcaster.key}"),
            "name_path": rtmp_form(f"{sid}/../{sid}", broadcaster.key),
            "arabic_digits": rtmp_form("".join(chr(0x660 + int(d)) for d in str(sid)), broadcaster.key),
            "unknown_id": rtmp_form(99999999, broadcaster.key), "huge_id": rtmp_form(10 ** 30, broadcaster.key),
            "empty_name": rtmp_form("", broadcaster.key), "huge_key": rtmp_form(sid, "k" * 100_000)}[case]
    resp = media_client.post("/media/nginx/publish", data=form)
    body = assert_error(resp, 413 if case == "huge_key" else 403)
    if case != "huge_key":
        assert body["code"] in ("bad_stream_key", "unknown_path")
    assert broadcasting(sid) is None


def test_nginx_update_drops_the_encoder_once_the_show_ended_or_the_key_changed(media_client, broadcaster):
    sid = broadcaster.live_id
    assert media_client.post("/media/nginx/publish", data=rtmp_form(sid, broadcaster.key)).status_code == 204
    media.regenerate_stream_key(broadcaster.creator)
    resp = media_client.post("/media/nginx/publish", data=rtmp_form(sid, broadcaster.key, call="update_publish"))
    assert_error(resp, 403, "bad_stream_key")
    new_key = key_in_db(broadcaster.creator.id)
    assert media_client.post("/media/nginx/publish", data=rtmp_form(sid, new_key, call="update_publish")).status_code == 204
    streams.change_status(broadcaster.creator, sid, "end")
    resp = media_client.post("/media/nginx/publish", data=rtmp_form(sid, new_key, call="update_publish"))
    assert_error(resp, 403, "stream_closed")


def test_nginx_publish_done_for_anything_is_harmless(media_client, broadcaster):
    for form in (rtmp_form(99999999, call="publish_done"), rtmp_form("x", call="publish_done"), {},
                 rtmp_form(broadcaster.live_id, app="other", call="publish_done")):
        assert media_client.post("/media/nginx/publish-done", data=form).status_code == 204
    assert media_client.get("/media/nginx/publish-done").status_code == 405


def test_nginx_play_allows_a_valid_token_for_that_very_stream(media_client, broadcaster, make_fan):
    stream = db.session.get(Stream, broadcaster.live_id)
    token = media.playback_token(make_fan(), stream)
    for file in ("index.m3u8", "0.ts", "123.ts"):
        resp = nginx_play(media_client, f"/stream/{stream.id}/{file}", token)
        assert resp.status_code == 200 and resp.get_data() == b""
    assert nginx_play(media_client, f"/stream/{stream.id}/0.ts", token, scheme="bearer").status_code == 200
    assert nginx_play(media_client, f"/stream/{stream.id}/0.ts", query_token=token).status_code == 200


@pytest.mark.parametrize("uri", [None, "", "stream/{sid}/index.m3u8", "/stream/{sid}", "/stream/{sid}/",
                                 "/stream/{sid}/../{other}/index.m3u8", "/stream/{other}/../{sid}/index.m3u8",
                                 "/stream/{sid}/x/index.m3u8", "/stream/+{sid}/index.m3u8", "/STREAM/{sid}/a.ts",
                                 "/stream/٣/a.ts", "/stream/99999999999999999999999/a.ts", "/hls/{sid}/a.ts",
                                 "/stream/{sid}%2F..%2F{other}/a.ts"])
def test_nginx_play_refuses_uris_that_are_not_one_streams_file(media_client, broadcaster, make_fan, uri):
    stream = db.session.get(Stream, broadcaster.live_id)
    other = broadcaster.scheduled_id
    token = media.playback_token(make_fan(), stream)
    resp = nginx_play(media_client, None if uri is None else uri.format(sid=stream.id, other=other), token)
    assert_error(resp, 403)


@pytest.mark.parametrize("case", ["none", "empty", "basic", "garbage", "other_stream", "expired", "huge", "foreign"])
def test_nginx_play_refuses_bad_tokens(media_client, broadcaster, make_fan, make_stream, monkeypatch, ctx, case):
    stream = db.session.get(Stream, broadcaster.live_id)
    fan = make_fan()
    other = make_stream(live=True)
    expired = _token_issued_seconds_ago(monkeypatch, fan, stream, ctx.config["PLAYBACK_TOKEN_TTL_SECONDS"] + 5)
    headers = {"none": {}, "empty": {"Authorization": "Bearer "},
               "basic": {"Authorization": "Basic " + media.playback_token(fan, stream)},
               "garbage": {"Authorization": "Bearer not-a-token"},
               "other_stream": {"Authorization": "Bearer " + media.playback_token(fan, other)},
               "expired": {"Authorization": "Bearer " + expired},
               "huge": {"Authorization": "Bearer " + "a" * 5000},
               "foreign": {"Authorization": "Bearer " + URLSafeTimedSerializer("another-key", salt="playback-token")
                           .dumps({"s": stream.id, "u": fan.id})}}[case]
    resp = media_client.get("/media/nginx/play", headers={"X-Original-URI": f"/stream/{stream.id}/0.ts", **headers})
    assert_error(resp, 403)


@pytest.fixture(autouse=True)
def _leave_streams_as_found(leave_streams_as_found):
    """Every test here leaves no open stream behind (see tests/streams/conftest.py)."""
