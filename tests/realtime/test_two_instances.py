"""Web instances are stateless (DESIGN.md §6): an event committed on instance A
reaches viewers connected to instance B through Redis pub/sub.

Two real server processes (`flask --app wsgi run`) share the session's
PostgreSQL and Redis; nothing is shared in memory.
"""
import time

import pytest

from tests.realtime.helpers import wait_healthy


@pytest.fixture()
def instances(spawn_server):
    a = spawn_server("A", wait=False)
    b = spawn_server("B", wait=False)
    wait_healthy(a)
    wait_healthy(b)
    assert a.proc.pid != b.proc.pid and a.base != b.base
    return a, b


def test_tip_sent_through_instance_a_reaches_viewers_on_instance_b_and_on_a(instances, viewers):
    a, b = instances
    creator, creator_h = a.api.register("creator")
    _fan, fan_h = a.api.register("fan")
    a.api.buy(fan_h, 1000)
    stream = a.api.live_stream(creator_h)
    path = f"/ws/channels/{stream['channel']}"
    on_b = viewers(b.api.ws(path))
    on_a = viewers(a.api.ws(path))
    for viewer in (on_b, on_a):
        assert 'id="stream-status"' in viewer.receive(5)

    started = time.monotonic()
    tip = a.api.send_tip(fan_h, creator["id"], 321, "from A <b>bold</b>", stream["id"])["tip"]
    for name, viewer in (("B", on_b), ("A", on_a)):
        message = viewer.wait_for(f'id="tip-{tip["id"]}"', 2)
        assert message, f"viewer on instance {name} got {viewer.messages}"
        assert time.monotonic() - started < 1.0, f"instance {name} took too long"
        assert "tipped" in message and "321" in message and "&lt;b&gt;bold&lt;/b&gt;" in message


def test_stream_status_changed_through_instance_b_reaches_viewers_on_instance_a(instances, viewers):
    a, b = instances
    _creator, creator_h = b.api.register("creator")
    stream = b.api.live_stream(creator_h)
    on_a = viewers(a.api.ws(f"/ws/channels/{stream['channel']}"))
    assert "Live" in on_a.receive(5)
    b.api.stream_action(creator_h, stream["id"], "end")
    message = on_a.wait_for('id="stream-status"', 2)
    assert message and "Ended" in message, on_a.messages
