"""The chat over a stream's channel socket (`/ws/channels/<channel>`): messages, deletions
and tips reach every viewer live, escaped; every (re)connect gets the latest history.

Served by the in-process live server over real TCP, with real PostgreSQL and Redis."""
from __future__ import annotations

import re
import time

from app.realtime.channels import registry
from tests.realtime.helpers import call

EVIL = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def _chat(live_api, headers, stream_id, text):
    return call(live_api.base, "POST", f"/api/streams/{stream_id}/chat", {"text": text}, headers)


def test_a_message_reaches_every_viewer_of_the_room_escaped_within_a_second(live_api, people, viewers):
    creator, creator_h, [(fan, fan_h), (_other, other_h)] = people(fans=2)
    stream = live_api.live_stream(creator_h)
    elsewhere = live_api.live_stream(creator_h)
    url = live_api.ws(f"/ws/channels/{stream['channel']}")
    room = {"logged out": viewers(url), "a fan": viewers(url, other_h), "the creator": viewers(url, creator_h)}
    bystander = viewers(live_api.ws(f"/ws/channels/{elsewhere['channel']}"))
    for viewer in (*room.values(), bystander):
        assert 'id="chat-history"' in viewer.wait_for('id="chat-history"', 5)

    started = time.monotonic()
    status, body = _chat(live_api, fan_h, stream["id"], EVIL)
    assert status == 201, body
    message_id = body["message"]["id"]
    for who, viewer in room.items():
        message = viewer.wait_for(f'id="chat-{message_id}"', 2)
        assert message, f"{who} got {viewer.messages}"
        assert time.monotonic() - started < 1.0, who
        assert 'hx-swap-oob="beforeend"' in message and fan.display_name in message
        assert "<img" not in message and "<script>" not in message and "&lt;script&gt;" in message
    assert not [m for m in bystander.collect(0.3) if "chat-" in m and "chat-history" not in m]


def test_a_deleted_message_is_removed_for_every_viewer(live_api, people, viewers):
    creator, creator_h, [(_fan, fan_h)] = people()
    stream = live_api.live_stream(creator_h)
    url = live_api.ws(f"/ws/channels/{stream['channel']}")
    room = [viewers(url), viewers(url, fan_h)]
    for viewer in room:
        viewer.wait_for('id="chat-history"', 5)
    _, body = _chat(live_api, fan_h, stream["id"], "oops")
    message_id = body["message"]["id"]
    status, _ = call(live_api.base, "POST", f"/api/streams/{stream['id']}/chat/{message_id}/delete", None, creator_h)
    assert status == 200
    for viewer in room:
        assert viewer.wait_for(f'data-chat-remove="chat-{message_id}"', 2), viewer.messages


def test_a_tip_into_the_stream_is_a_chat_line_in_the_same_message_as_its_pop(live_api, people, viewers):
    creator, creator_h, [(fan, fan_h)] = people()
    stream = live_api.live_stream(creator_h)
    viewer = viewers(live_api.ws(f"/ws/channels/{stream['channel']}"))
    viewer.wait_for('id="chat-history"', 5)
    tip = live_api.send_tip(fan_h, creator.id, 77, "<b>cheers</b>", stream["id"])["tip"]
    message = viewer.wait_for(f'id="chat-tip-{tip["id"]}"', 2)
    assert message and f'id="tip-{tip["id"]}"' in message  # the pop, in the same frame
    line = re.search(rf'<li id="chat-tip-{tip["id"]}".*?</li>', message, re.S).group(0)
    assert "77" in line and fan.display_name in line and "&lt;b&gt;cheers&lt;/b&gt;" in line


def test_every_reconnect_gets_the_latest_history_replacing_the_list(live_api, people, viewers):
    creator, creator_h, [(_fan, fan_h)] = people()
    stream = live_api.live_stream(creator_h)
    url = live_api.ws(f"/ws/channels/{stream['channel']}")
    _, seen = _chat(live_api, fan_h, stream["id"], "seen")
    first = viewers(url)
    state = first.wait_for('id="chat-history"', 5)
    assert '<div id="chat-history" hx-swap-oob="true">' in state and f'id="chat-{seen["message"]["id"]}"' in state
    first.close()

    _, missed = _chat(live_api, fan_h, stream["id"], "missed while away")
    _, gone = _chat(live_api, fan_h, stream["id"], "deleted while away")
    call(live_api.base, "POST", f"/api/streams/{stream['id']}/chat/{gone['message']['id']}/delete", None, creator_h)
    tip = live_api.send_tip(fan_h, creator.id, 5, "", stream["id"])["tip"]
    again = viewers(url).wait_for('id="chat-history"', 5)
    ids = re.findall(r'id="chat-((?:tip-)?\d+)"', again)
    assert ids == [str(seen["message"]["id"]), str(missed["message"]["id"]), f"tip-{tip['id']}"], ids


def test_the_connect_state_of_a_stream_channel_ends_with_the_chat(app, make_fan, make_stream, chat):
    """Registered after the stream's own state (app/__init__.py's live tuple)."""
    fan, stream = make_fan(), make_stream(live=True)
    message_id = chat(fan, stream.id, "in the state").get_json()["message"]["id"]
    with app.test_request_context():
        channels = registry()
        state = channels.connect_state(channels.channel(stream.channel), stream.channel, None)
        assert state.index('id="stream-status"') < state.index('id="chat-history"')
        assert f'id="chat-{message_id}"' in state
        from app.chat.live import connect_state
        assert connect_state("s-no-such-channel") is None


def test_a_message_posted_outside_any_request_is_pushed_too(live_api, people, viewers, ctx):
    """A job or the seed may post: the pushed line needs no request to be rendered."""
    from app.chat import service
    creator, creator_h, [(fan, _fan_h)] = people()
    stream = live_api.live_stream(creator_h)
    viewer = viewers(live_api.ws(f"/ws/channels/{stream['channel']}"))
    viewer.wait_for('id="chat-history"', 5)
    line = service.post_message(fan, stream["id"], "from a job")
    message = viewer.wait_for(f'id="chat-{line.id}"', 2)
    assert message and f'/streams/{stream["id"]}/chat/{line.id}/delete' in message
