"""The per-process hub (app/realtime/hub.py) against the session's real Redis."""
import queue
import threading
import time
import uuid

import pytest
import redis

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from app.realtime.hub import QUEUE_SIZE, WAKE, WAKE_INTERVAL, Hub, text_frame


def _read_frames(data: bytes) -> list[str]:
    """Parse server frames with a real WebSocket client implementation (wsproto)."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="x", target="/")))
    next(server.events())
    client.receive_data(server.send(AcceptConnection()))
    next(client.events())
    client.receive_data(data)
    return [e.data for e in client.events() if isinstance(e, TextMessage)]


def _next_text(sub, timeout: float) -> str:
    """The next message in `sub`'s inbox as text, skipping WAKEs."""
    deadline = time.monotonic() + timeout
    while True:
        item = sub.queue.get(timeout=max(deadline - time.monotonic(), 0.001))
        if item is not WAKE:
            (text,) = _read_frames(item)
            return text


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frame_is_read_back_by_a_websocket_client_at_every_length_encoding(size):
    text = ("é<b>" * size)[:size]
    assert _read_frames(text_frame(text.encode())) == [text]
    assert _read_frames(text_frame(b"one") + text_frame(b"two")) == ["one", "two"]


@pytest.fixture()
def prefix(app):
    return app.config["REDIS_PREFIX"]  # this run's namespace on a possibly shared Redis


@pytest.fixture()
def hub(services, prefix):
    h = Hub(services[1], prefix=prefix)
    yield h
    h.stop()


@pytest.fixture()
def publisher(services):
    client = redis.Redis.from_url(services[1])
    yield client
    client.close()


def test_slow_consumer_is_dropped_and_never_delays_the_others(hub, publisher, prefix):
    channel = f"slow-{uuid.uuid4().hex[:8]}"
    slow = hub.subscribe((channel,))
    fast = hub.subscribe((channel,))
    total = QUEUE_SIZE + 10
    received, errors = [], []

    def drain():
        try:
            while len(received) < total:
                received.append(_next_text(fast, 5))
        except queue.Empty as exc:
            errors.append(exc)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    started = time.monotonic()
    pipe = publisher.pipeline(transaction=False)
    for i in range(total):
        pipe.publish(prefix + channel, f"m{i}")
    pipe.execute()
    drainer.join(10)
    elapsed = time.monotonic() - started
    try:
        assert not errors and received == [f"m{i}" for i in range(total)], (len(received), received[-3:])
        assert elapsed < 2.0, f"the fast consumer waited {elapsed:.2f}s"
        assert slow.dropped and not fast.dropped
        assert slow.queue.qsize() == QUEUE_SIZE  # the listener never blocked on it
    finally:
        hub.unsubscribe(slow)
        hub.unsubscribe(fast)


def test_an_event_published_right_after_subscribe_returns_is_delivered_even_on_a_cold_hub(
        services, publisher, prefix):
    """The sockets read their state *after* subscribing; that is only gap-free if
    subscribe() returns once the listener's PSUBSCRIBE is confirmed by Redis."""
    for attempt in range(10):
        cold = Hub(services[1], prefix=prefix)  # no listener thread yet
        try:
            channel = f"cold-{uuid.uuid4().hex[:8]}"
            sub = cold.subscribe((channel,))
            publisher.publish(prefix + channel, "first")
            assert _next_text(sub, 2) == "first", f"lost on attempt {attempt}"
        finally:
            cold.stop()


def test_local_subscribers_only_get_their_own_channels(hub, publisher, prefix):
    mine, other = f"mine-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    sub = hub.subscribe((mine,))
    try:
        publisher.publish(prefix + other, "not for you")
        publisher.publish(prefix + mine, "for you")
        assert _next_text(sub, 2) == "for you"
        assert all(sub.queue.get_nowait() is WAKE for _ in range(sub.queue.qsize()))
    finally:
        hub.unsubscribe(sub)
    assert hub.local_count(mine) == 0


def test_idle_inboxes_are_woken_so_a_socket_loop_notices_its_peer_left(hub, publisher, prefix):
    """Socket loops wait on their inbox without a timer; the hub wakes idle ones."""
    idle = hub.subscribe((f"idle-{uuid.uuid4().hex[:8]}",))
    busy_channel = f"busy-{uuid.uuid4().hex[:8]}"
    busy = hub.subscribe((busy_channel,))
    try:
        publisher.publish(prefix + busy_channel, "unread")
        started = time.monotonic()
        assert idle.queue.get(timeout=WAKE_INTERVAL * 3) is WAKE
        assert time.monotonic() - started <= WAKE_INTERVAL * 2.5
        time.sleep(WAKE_INTERVAL * 2.5)
        # An inbox that already holds something is not padded with WAKEs.
        assert _next_text(busy, 1) == "unread" and busy.queue.qsize() <= 1
        assert not idle.dropped and not busy.dropped
    finally:
        hub.unsubscribe(idle)
        hub.unsubscribe(busy)
