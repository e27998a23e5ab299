"""Who may open which socket (DESIGN.md §5 "a private channel's WebSocket
refuses anyone without access", §6 auth, STACK-NOTES "check Origin yourself").

Every refusal happens at the handshake: an HTTP error status, no upgrade, no
WebSocket data. The raw `handshake` helper sends the request as a browser
does (Host with the port), so "same origin" means what it means in a browser.
"""
import json
import re

import pytest
from simple_websocket import Client
from simple_websocket import ConnectionError as HandshakeRefused

from tests.realtime.helpers import handshake


def _refused(hs, status, code):
    assert hs.status == status, (hs.status, hs.body)
    assert "upgrade" not in hs.headers and "sec-websocket-accept" not in hs.headers
    body = json.loads(hs.body)
    assert body["code"] == code, body
    assert b"recent-tips" not in hs.body and b"stream-status" not in hs.body


@pytest.fixture()
def private_stream(live_api, people):
    creator, creator_h, [(_fan, fan_h)] = people()
    stream = live_api.create_stream(creator_h, "private", ticketPrice=100)
    return creator, creator_h, fan_h, stream


def test_private_channel_refuses_logged_out_clients_and_other_fans_at_the_handshake(
        live_server, live_api, private_stream):
    _creator, _creator_h, fan_h, stream = private_stream
    path = f"/ws/channels/{stream['channel']}"
    for headers in ({}, fan_h):
        _refused(handshake(live_server, path, headers), 403, "no_access")
        with pytest.raises(HandshakeRefused) as refused:
            Client.connect(live_api.ws(path), headers=headers)
        assert refused.value.status_code == 403


def test_private_channel_accepts_its_creator_by_bearer_token_or_session_cookie(
        live_server, live_api, private_stream, client, login, viewers):
    creator, creator_h, _fan_h, stream = private_stream
    path = f"/ws/channels/{stream['channel']}"
    state = viewers(live_api.ws(path), creator_h).receive(5)
    assert 'id="stream-status"' in state and 'id="recent-tips"' in state

    login(creator)
    cookie = f"session={client.get_cookie('session').value}"
    hs = handshake(live_server, path, {"Cookie": cookie})
    assert hs.status == 101 and b"stream-status" in hs.body


def test_unknown_channel_is_404_at_the_handshake(live_server, live_api, people):
    _creator, creator_h, _fans = people(fans=0)
    _refused(handshake(live_server, "/ws/channels/s-no-such-channel", creator_h), 404, "channel_not_found")


def test_cross_site_origin_is_refused_and_same_origin_accepted(live_server, live_api, private_stream, client,
                                                                login):
    creator, creator_h, _fan_h, private = private_stream
    public = live_api.live_stream(creator_h)
    login(creator)
    cookie = {"Cookie": f"session={client.get_cookie('session').value}"}
    port = live_server.rsplit(":", 1)[1]
    other_port = str(int(port) + 1 if int(port) < 65535 else int(port) - 1)
    for path in (f"/ws/channels/{public['channel']}", f"/ws/channels/{private['channel']}", "/ws/me"):
        # Cross-site WebSocket hijacking: another site's page, riding the creator's cookie.
        for origin in ("http://evil.example", f"http://127.0.0.1:{other_port}", "null"):
            _refused(handshake(live_server, path, {"Origin": origin, **cookie}), 403, "bad_origin")
            _refused(handshake(live_server, path, {"Origin": origin, **creator_h}), 403, "bad_origin")
        hs = handshake(live_server, path, {"Origin": live_server, **cookie})
        assert hs.status == 101, (path, hs.status, hs.body)
        assert b"nav-balance" in hs.body or b"stream-status" in hs.body


def test_a_nul_byte_in_a_socket_path_is_400_invalid_text_at_the_handshake(live_server, live_api, people):
    """`%00` in a channel name or overlay secret once reached PostgreSQL (psycopg.DataError: a 500)."""
    from app.tips.service import overlay_secret
    creator, creator_h, _fans = people(fans=0)
    stream = live_api.live_stream(creator_h)
    secret = overlay_secret(creator)
    for path in ("/ws/channels/s-abc%00def", f"/ws/channels/{stream['channel']}%00", "/ws/channels/c-abc%00",
                 f"/ws/overlay/{secret}%00", f"/ws/overlay/{secret[:-1]}%00", "/ws/me?x=%00"):
        for headers in ({}, creator_h):
            _refused(handshake(live_server, path, headers), 400, "invalid_text")


def test_an_origin_that_is_no_url_is_refused_as_cross_site_not_a_crash(live_server, live_api, people):
    """`urlsplit("http://[")` raises ValueError: once a 500 at the handshake."""
    _creator, creator_h, _fans = people(fans=0)
    stream = live_api.live_stream(creator_h)
    for origin in ("http://[", "http://[::1", "http://]"):
        _refused(handshake(live_server, f"/ws/channels/{stream['channel']}", {"Origin": origin, **creator_h}),
                 403, "bad_origin")


def test_a_channel_name_no_feature_serves_is_404_at_the_handshake_even_ones_the_hub_carries(
        live_server, live_api, people):
    """Only registered prefixes are channels: a user's own feed, an overlay's, a credential's
    or a signaling inbox is never reachable by its name."""
    creator, creator_h, _fans = people(fans=0)
    for name in (f"user:{creator.id}", f"overlay:{creator.id}", "auth:token:1", "signal:1:fan", "x-abc", "s"):
        _refused(handshake(live_server, f"/ws/channels/{name}", creator_h), 404, "channel_not_found")


def test_every_websocket_route_refuses_a_cross_site_origin_at_the_handshake(app, live_server, live_api, people):
    """The transport's check covers the sockets features declare themselves (the OBS
    overlay, call signaling), before any of them looks at who is asking."""
    _creator, creator_h, _fans = people(fans=0)
    rules = [r.rule for r in app.url_map.iter_rules() if r.websocket]
    assert {"/ws/overlay/<secret>", "/ws/calls/<int:call_id>/signal"} <= set(rules)
    for rule in rules:
        path = re.sub(r"<int:\w+>", "1", re.sub(r"<(?!int:)\w+>", "s-abcdefghijklmnopqrstuvwxyz", rule))
        _refused(handshake(live_server, path, {"Origin": "http://evil.example", **creator_h}), 403, "bad_origin")
