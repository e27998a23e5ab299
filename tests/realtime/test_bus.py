"""Publishing (app/realtime/bus.py) against the session's real Redis."""
import time
import uuid

import pytest
import redis

from app.realtime import bus


@pytest.fixture()
def listener(app, services):
    """(prefix, pubsub subscribed to two fresh channels a and b)."""
    prefix = app.config["REDIS_PREFIX"]
    client = redis.Redis.from_url(services[1])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    names = (f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}")
    pubsub.subscribe(*(prefix + n for n in names))
    yield names, pubsub
    pubsub.close()
    client.close()


def _received(pubsub, n):
    got, deadline = [], time.monotonic() + 3
    while len(got) < n and time.monotonic() < deadline:
        # None also stands for a skipped subscribe confirmation: keep reading.
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            got.append((message["channel"].decode(), message["data"].decode()))
    return got


def test_count_and_publish_splices_the_new_count_into_the_last_placeholder(app, listener):
    (a, b), pubsub = listener
    prefix = app.config["REDIS_PREFIX"]
    counter = f"test-counter-{uuid.uuid4().hex[:8]}"
    with app.app_context():
        # A placeholder-looking text earlier in a message (a user's words) is left alone:
        # only the last COUNT is the badge.
        assert bus.count_and_publish(counter, [(a, f"<p>{bus.COUNT}</p><b>{bus.COUNT}</b>"), (b, "plain 100%")])
        assert bus.count_and_publish(counter, [(a, f"<b>{bus.COUNT}</b>")])
        assert redis.Redis.from_url(app.config["REDIS_URL"]).get(prefix + counter) == b"2"
    assert _received(pubsub, 3) == [(prefix + a, f"<p>{bus.COUNT}</p><b>1</b>"), (prefix + b, "plain 100%"),
                                    (prefix + a, "<b>2</b>")]


def test_count_and_publish_reports_an_outage_instead_of_raising(make_app, services):
    down = make_app((services[0], "redis://127.0.0.1:1/0"))  # nothing listens on port 1
    with down.app_context():
        assert bus.count_and_publish("test-counter", [("a", bus.COUNT)]) is False


def test_count_publish_and_claim_wins_each_claim_once_with_its_expiry(app, listener):
    (a, _), pubsub = listener
    prefix = app.config["REDIS_PREFIX"]
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    counter, tag = f"test-counter-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    short, long = bus.Claim(f"{prefix}claim-short-{tag}", 5), bus.Claim(f"{prefix}claim-long-{tag}", 60)
    with app.app_context():
        assert bus.count_publish_and_claim(counter, [(a, f"<b>{bus.COUNT}</b>")], [short, long]) == [True, True]
        client.delete(short.key)  # as the refresh job does when it starts
        assert bus.count_publish_and_claim(counter, [(a, f"<b>{bus.COUNT}</b>")], [short, long]) == [True, False]
        assert bus.count_publish_and_claim(counter, [(a, "plain")], []) == []
    assert 0 < client.ttl(short.key) <= 5 and 5 < client.ttl(long.key) <= 60
    assert _received(pubsub, 3) == [(prefix + a, "<b>1</b>"), (prefix + a, "<b>2</b>"), (prefix + a, "plain")]
    client.delete(short.key, long.key)


def test_count_publish_and_claim_claims_nothing_while_redis_is_down(make_app, services):
    down = make_app((services[0], "redis://127.0.0.1:1/0"))
    with down.app_context():
        assert bus.count_publish_and_claim("test-counter", [("a", bus.COUNT)], [bus.Claim("x", 5)]) is None


def test_the_publisher_sends_each_batch_in_order_from_its_own_thread(app, listener):
    (a, b), pubsub = listener
    prefix = app.config["REDIS_PREFIX"]
    threads = []

    def batch(n):
        def render():
            import threading
            threads.append(threading.current_thread().name)
            return [(a, f"batch {n}"), (b, f"batch {n}")]
        return render

    with app.app_context():
        with bus.Publisher() as publisher:
            for n in range(3):
                publisher.submit(batch(n))
    # Leaving the block waited for every batch: they are all out, in the order handed in.
    assert _received(pubsub, 6) == [(prefix + c, f"batch {n}") for n in range(3) for c in (a, b)]
    assert threads == ["publisher"] * 3


def test_a_rendering_error_reaches_the_caller_after_the_earlier_batches_went_out(app, listener):
    (a, _b), pubsub = listener
    prefix = app.config["REDIS_PREFIX"]

    def broken():
        raise ValueError("template bug")

    with app.app_context():
        with pytest.raises(ValueError, match="template bug"):
            with bus.Publisher() as publisher:
                publisher.submit(lambda: [(a, "first")])
                publisher.submit(broken)
                publisher.submit(lambda: [(a, "after the error")])  # dropped: the caller is told
    assert _received(pubsub, 2) == [(prefix + a, "first")]
