"""The per-process hub (app/realtime/hub.py) against the session's real Redis."""
import queue
import threading
import time
import uuid

import pytest
import redis

from app.realtime.hub import QUEUE_SIZE, Hub


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
                received.append(fast.queue.get(timeout=5))
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
            assert sub.queue.get(timeout=2) == "first", f"lost on attempt {attempt}"
        finally:
            cold.stop()


def test_local_subscribers_only_get_their_own_channels(hub, publisher, prefix):
    mine, other = f"mine-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    sub = hub.subscribe((mine,))
    try:
        publisher.publish(prefix + other, "not for you")
        publisher.publish(prefix + mine, "for you")
        assert sub.queue.get(timeout=2) == "for you"
        assert sub.queue.empty()
    finally:
        hub.unsubscribe(sub)
    assert hub.local_count(mine) == 0
