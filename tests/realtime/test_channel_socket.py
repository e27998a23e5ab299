"""`/ws/channels/<channel>`: what a stream's viewers receive (DESIGN.md §5 Tips, §6).

Served by the in-process live server (werkzeug, threaded) over real TCP,
with real PostgreSQL and Redis pub/sub between the tip and the sockets.
"""
import re
import time
import uuid

EVIL = "<script>alert('x')</script> & <b>"
EVIL_ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;"


def test_committed_tip_reaches_every_viewer_of_the_stream_escaped_within_a_second(live_api, people, viewers):
    creator, creator_h, [(fan, fan_h), (_other, other_h)] = people(fans=2)
    stream = live_api.live_stream(creator_h)
    elsewhere = live_api.live_stream(creator_h)  # another stream of the same creator
    url = live_api.ws(f"/ws/channels/{stream['channel']}")
    watching = {"logged out": viewers(url), "another fan": viewers(url, other_h),
                "the creator": viewers(url, creator_h)}
    bystander = viewers(live_api.ws(f"/ws/channels/{elsewhere['channel']}"))
    for viewer in (*watching.values(), bystander):
        assert 'id="stream-status"' in viewer.receive(5)

    started = time.monotonic()
    tip = live_api.send_tip(fan_h, creator.id, 1234, EVIL, stream["id"])["tip"]
    for who, viewer in watching.items():
        message = viewer.wait_for(f'id="tip-{tip["id"]}"', 2)
        elapsed = time.monotonic() - started
        assert message, f"{who} got {viewer.messages}"
        assert elapsed < 1.0, f"{who}: {elapsed:.3f}s"
        assert "tipped" in message and "1,234" in message and fan.display_name in message
        assert EVIL_ESCAPED in message
        assert "<script>" not in message and "<b>" not in message
    assert not [m for m in bystander.collect(0.3) if "tipped" in m], "a tip leaked to another stream's channel"


def test_only_committed_tips_are_announced_not_refused_ones_nor_replays(live_api, people, viewers):
    creator, creator_h, [(_fan, fan_h)] = people(balance=100)
    stream = live_api.live_stream(creator_h)
    viewer = viewers(live_api.ws(f"/ws/channels/{stream['channel']}"))
    viewer.receive(5)
    key = str(uuid.uuid4())
    status, first = live_api.tip(fan_h, creator.id, 60, "once", stream["id"], key=key)
    assert status == 201, first
    assert viewer.wait_for(f'id="tip-{first["tip"]["id"]}"', 2)

    status, replay = live_api.tip(fan_h, creator.id, 60, "once", stream["id"], key=key)
    assert status in (200, 201) and replay["tip"]["id"] == first["tip"]["id"], replay
    status, refused = live_api.tip(fan_h, creator.id, 60, "more than I have", stream["id"])
    assert status == 402, refused
    assert not [m for m in viewer.collect(0.5) if "tipped" in m], viewer.messages


def test_channel_socket_first_sends_the_state_on_every_reconnect_including_tips_missed_while_away(
        live_api, people, viewers):
    creator, creator_h, [(_fan, fan_h)] = people()
    stream = live_api.live_stream(creator_h)
    url = live_api.ws(f"/ws/channels/{stream['channel']}")
    seen = live_api.send_tip(fan_h, creator.id, 5, "seen", stream["id"])["tip"]["id"]

    first = viewers(url)
    state = first.receive(5)
    assert 'id="stream-status"' in state and "Live" in state
    assert 'id="recent-tips"' in state and f'id="recent-tip-{seen}"' in state
    first.close()

    missed = [live_api.send_tip(fan_h, creator.id, n, f"missed {n}", stream["id"])["tip"]["id"]
              for n in (6, 7)]

    again = viewers(url)
    state = again.receive(5)
    assert 'id="stream-status"' in state and "Live" in state
    assert 'id="recent-tips"' in state and 'hx-swap-oob="true"' in state
    listed = [int(i) for i in re.findall(r'id="recent-tip-(\d+)"', state)]
    assert listed[:3] == [missed[1], missed[0], seen], state  # newest first


def test_me_socket_first_sends_the_current_balance_on_every_reconnect(live_api, people, viewers):
    creator, _creator_h, [(_fan, fan_h)] = people(balance=2000)
    me = live_api.ws("/ws/me")
    first = viewers(me, fan_h)
    assert '<span id="nav-balance" hx-swap-oob="true">2,000</span>' in first.receive(5)
    first.close()
    live_api.send_tip(fan_h, creator.id, 500)  # from another device while this page is away
    again = viewers(me, fan_h)
    assert '<span id="nav-balance" hx-swap-oob="true">1,500</span>' in again.receive(5)


def test_stream_status_changes_reach_viewers(live_api, people, viewers):
    _creator, creator_h, _fans = people(fans=0)
    stream = live_api.create_stream(creator_h)
    viewer = viewers(live_api.ws(f"/ws/channels/{stream['channel']}"))
    assert "Starting soon" in viewer.receive(5)

    live_api.stream_action(creator_h, stream["id"], "start")
    message = viewer.wait_for('id="stream-status"', 2)
    assert message and ">Live<" in message, viewer.messages

    live_api.stream_action(creator_h, stream["id"], "end")
    message = viewer.wait_for('id="stream-status"', 2)
    assert message and ">Ended<" in message and 'hx-swap-oob="true"' in message, viewer.messages


def test_permessage_deflate_is_declined_and_a_client_offering_it_still_gets_every_tip(
        live_server, live_api, people, viewers):
    """Browsers offer permessage-deflate; the server declines it so one pre-built
    frame serves every socket (app/realtime/hub.py). simple-websocket's client
    offers it too, so `viewers` also checks the declined path end to end."""
    from tests.realtime.helpers import handshake

    creator, creator_h, [(_fan, fan_h)] = people()
    stream = live_api.live_stream(creator_h)
    path = f"/ws/channels/{stream['channel']}"
    hs = handshake(live_server, path, {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
    assert hs.status == 101 and "sec-websocket-extensions" not in hs.headers
    assert hs.body[:1] == b"\x81"  # an uncompressed text frame (RSV1 clear) carrying the state

    viewer = viewers(live_api.ws(path))
    assert 'id="stream-status"' in viewer.receive(5)
    tips = [live_api.send_tip(fan_h, creator.id, n, f"tip {n}", stream["id"])["tip"] for n in (1, 2, 3)]
    for tip in tips:
        assert viewer.wait_for(f'id="tip-{tip["id"]}"', 2), viewer.messages


def test_a_join_whose_state_cannot_be_read_is_closed_as_a_websocket_not_answered_with_an_http_500(
        app, live_api, people, viewers, monkeypatch):
    """A join storm can leave no database connection free while a socket reads its
    state, after the 101: the socket is closed with 1011 (reconnect), never sent the
    raw `HTTP/1.1 500` a raised exception would write into the upgraded stream."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    _creator, creator_h, _fans = people(fans=0)
    stream = live_api.live_stream(creator_h)
    url = live_api.ws(f"/ws/channels/{stream['channel']}")
    registry = app.extensions["realtime_channels"]

    def no_connection(*_args, **_kwargs):
        raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached")
    monkeypatch.setattr(registry, "connect_state", no_connection)
    refused = viewers(url)
    assert refused.receive(5) is None and refused.closed
    assert refused.ws.close_reason == 1011, refused.ws.close_reason
    assert not [m for m in refused.messages if "HTTP/1.1" in m]

    monkeypatch.undo()
    assert 'id="stream-status"' in viewers(url).receive(5)  # the reconnect gets the state
