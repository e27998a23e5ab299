"""The hub subscribes per channel (app/realtime/hub.py): reference counts under
concurrent joins and leaves, no gap at subscribe, resubscription after the
listener's connection is killed, no traffic for channels without local sockets,
coalesced fan-out for channels with an audience only. Real Redis throughout."""
from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
import redis

from app.realtime.hub import RESYNC, WAKE, Hub, frame_payload


@pytest.fixture()
def prefix(app):
    return app.config["REDIS_PREFIX"]  # this run's namespace on a possibly shared Redis


@pytest.fixture()
def publisher(services):
    client = redis.Redis.from_url(services[1])
    yield client
    client.close()


@pytest.fixture()
def make_hub(services, prefix):
    made = []

    def _make(**kwargs):
        made.append(Hub(services[1], prefix=prefix, **kwargs))
        return made[-1]
    yield _make
    for hub in made:
        hub.stop()


def _texts(sub, timeout: float, until=None) -> list[str]:
    """Payloads in `sub`'s inbox (WAKEs skipped) until `until(texts)` or the timeout."""
    texts = []
    deadline = time.monotonic() + timeout
    while until is None or not until(texts):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            item = sub.queue.get(timeout=left)
        except Exception:  # noqa: BLE001 - queue.Empty at the deadline
            break
        if item is not WAKE and item is not RESYNC:
            texts.append(frame_payload(item).decode())
    return texts


def _subscribed(client, prefix: str, pattern: str) -> dict[str, int]:
    """{channel (without prefix): NUMSUB} of the channels Redis has subscribers for."""
    names = [c.decode() for c in client.pubsub_channels(prefix + pattern)]
    counts = dict(client.pubsub_numsub(*names)) if names else {}
    return {name[len(prefix):]: counts[name.encode()] for name in names}


def _eventually(check, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_redis_holds_exactly_the_channels_with_local_sockets_after_concurrent_joins_and_leaves(
        make_hub, publisher, prefix):
    """50 threads join and leave 8 channels at random; afterwards Redis has one
    subscriber (this process) on each channel with local sockets and none on the rest,
    and each of those channels delivers to every socket on it."""
    hub = make_hub()
    tag = uuid.uuid4().hex[:8]
    channels = [f"refc-{tag}-{i}" for i in range(8)]
    kept: list = []
    kept_lock = threading.Lock()
    errors = []

    def churn(seed: int):
        rng = random.Random(seed)
        mine = []
        try:
            for _ in range(30):
                if mine and rng.random() < 0.5:
                    hub.unsubscribe(mine.pop(rng.randrange(len(mine))))
                else:
                    mine.append(hub.subscribe((rng.choice(channels),)))
            with kept_lock:
                kept.extend(mine)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # Leave some channels entirely, so both directions are checked.
    for sub in [s for s in kept if s.channels[0] in channels[:3]]:
        hub.unsubscribe(sub)
        kept.remove(sub)
    held = {c for c in channels if hub.local_count(c)}
    assert held and held != set(channels)
    assert {s.channels[0] for s in kept} == held

    expected = dict.fromkeys(held, 1)
    got = _eventually(lambda: (r := _subscribed(publisher, prefix, f"refc-{tag}-*")) == expected and r)
    assert got == expected, (_subscribed(publisher, prefix, f"refc-{tag}-*"), expected)

    for channel in held:
        publisher.publish(prefix + channel, f"to {channel}")
    for sub in kept:
        want = f"to {sub.channels[0]}"
        assert want in _texts(sub, 2, lambda t, w=want: w in t), sub.channels


def test_an_event_published_right_after_subscribe_returns_is_delivered_on_new_and_rejoined_channels(
        make_hub, publisher, prefix):
    """No gap at subscribe, also when a channel's last socket has just left and the
    listener may be unsubscribing it while a new socket joins."""
    hub = make_hub()
    warm = hub.subscribe((f"warm-{uuid.uuid4().hex[:8]}",))
    for attempt in range(30):
        channel = f"gap-{uuid.uuid4().hex[:8]}"
        first = hub.subscribe((channel,))
        publisher.publish(prefix + channel, f"new {attempt}")
        assert _texts(first, 2, lambda t: t) == [f"new {attempt}"], f"lost on a new channel, attempt {attempt}"
        hub.unsubscribe(first)
        if attempt % 2:
            time.sleep(0.02 * (attempt % 5))  # let the listener's UNSUBSCRIBE go out, sometimes
        again = hub.subscribe((channel,))
        publisher.publish(prefix + channel, f"again {attempt}")
        assert _texts(again, 2, lambda t: t) == [f"again {attempt}"], f"lost on rejoin, attempt {attempt}"
        hub.unsubscribe(again)
    hub.unsubscribe(warm)


def test_a_process_receives_no_messages_of_channels_it_has_no_sockets_for(make_hub, publisher, prefix):
    hub = make_hub()
    tag = uuid.uuid4().hex[:8]
    left, never, barrier = f"left-{tag}", f"never-{tag}", f"barrier-{tag}"
    sub = hub.subscribe((left,))
    publisher.publish(prefix + left, "while here")
    assert _texts(sub, 2, lambda t: t) == ["while here"]
    hub.unsubscribe(sub)
    assert _eventually(lambda: not _subscribed(publisher, prefix, left))
    before = hub.received
    for i in range(20):
        publisher.publish(prefix + left, f"after {i}")
        publisher.publish(prefix + never, f"never {i}")
    # Redis delivers in order on the listener's one connection: once the barrier's
    # message is in, anything published before it would have been read too.
    last = hub.subscribe((barrier,))
    publisher.publish(prefix + barrier, "barrier")
    assert _texts(last, 2, lambda t: t) == ["barrier"]
    assert hub.received - before == 1, "the process read messages of channels it holds no socket for"
    hub.unsubscribe(last)


def _listener_client_id(client, hub) -> int:
    for entry in client.client_list():
        if entry.get("name") == hub.listener_name:
            return int(entry["id"])
    raise AssertionError(f"no Redis client named {hub.listener_name}")


def test_after_the_listeners_connection_is_killed_channels_are_resubscribed_and_sockets_resync(
        make_hub, publisher, prefix):
    hub = make_hub()
    tag = uuid.uuid4().hex[:8]
    subs = [hub.subscribe((f"kill-{tag}-{i % 3}",)) for i in range(6)]
    assert _eventually(lambda: len(_subscribed(publisher, prefix, f"kill-{tag}-*")) == 3)
    publisher.client_kill_filter(_id=_listener_client_id(publisher, hub))

    for sub in subs:  # every socket is told it may have missed events
        deadline = time.monotonic() + 10
        item = None
        while item is not RESYNC and time.monotonic() < deadline:
            item = sub.queue.get(timeout=max(deadline - time.monotonic(), 0.01))
        assert item is RESYNC, sub.channels
    expected = {f"kill-{tag}-{i}": 1 for i in range(3)}
    assert _eventually(lambda: _subscribed(publisher, prefix, f"kill-{tag}-*") == expected)
    for i in range(3):
        publisher.publish(prefix + f"kill-{tag}-{i}", f"after {i}")
    for n, sub in enumerate(subs):
        assert _texts(sub, 2, lambda t: t) == [f"after {n % 3}"]
        hub.unsubscribe(sub)


def _publish_together(client, messages: list[tuple[str, str]]) -> None:
    """PUBLISH them all in one script call: Redis writes them to the listener in one go."""
    script = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end"
    client.eval(script, 0, *[part for pair in messages for part in pair])


def test_messages_read_together_reach_an_audience_channel_as_one_frame_in_order_and_others_one_by_one(
        make_hub, publisher, prefix):
    """A stream's sockets get a burst as few frames (the HTML joined with newlines,
    order kept); a channel without an audience (call signaling, a user's feed) gets
    one frame per message."""
    tag = uuid.uuid4().hex[:8]
    stream, call = f"stream-{tag}", f"call-{tag}"
    hub = make_hub(audience=lambda c: (lambda n: f"<b>{n}</b>") if c.startswith("stream-") else None)
    viewer, party = hub.subscribe((stream,)), hub.subscribe((call,))
    n = 60
    sent_stream = [f'<div id="tip-{i}" hx-swap-oob="beforeend:#tips">{i}</div>' for i in range(n)]
    sent_call = [f'{{"type":"candidate","n":{i}}}' for i in range(n)]
    _publish_together(publisher, [pair for i in range(n) for pair in (
        (prefix + stream, sent_stream[i]), (prefix + call, sent_call[i]))])

    frames = [f for f in _texts(viewer, 3, lambda t: "\n".join(t).count('id="tip-') >= n)
              if not f.startswith("<b>")]  # the presence tick's viewer count
    assert "\n".join(frames) == "\n".join(sent_stream)
    assert len(frames) < n // 2, f"{len(frames)} frames for {n} messages read together"
    assert _texts(party, 3, lambda t: len(t) >= n) == sent_call
    hub.unsubscribe(viewer)
    hub.unsubscribe(party)


def test_without_an_audience_nothing_is_coalesced(make_hub, publisher, prefix):
    hub = make_hub()
    channel = f"stream-{uuid.uuid4().hex[:8]}"
    sub = hub.subscribe((channel,))
    sent = [f"<p>{i}</p>" for i in range(40)]
    _publish_together(publisher, [(prefix + channel, m) for m in sent])
    assert _texts(sub, 3, lambda t: len(t) >= len(sent)) == sent
    hub.unsubscribe(sub)


def test_messages_arriving_soon_after_a_round_wait_for_the_next_round_and_go_out_together(
        make_hub, publisher, prefix):
    """Delivery rounds (ROUND_INTERVAL): the first message after a quiet spell goes out
    at once; messages published one by one within the interval after it wait and reach
    a stream's sockets as one frame, in order, no later than the interval plus slack."""
    from app.realtime import hub as hub_module

    tag = uuid.uuid4().hex[:8]
    stream = f"stream-{tag}"
    hub = make_hub(audience=lambda c: (lambda n: f"<b>{n}</b>") if c.startswith("stream-") else None)
    viewer = hub.subscribe((stream,))

    def payloads(count):
        return [f for f in _texts(viewer, 3, lambda t: "\n".join(
            x for x in t if not x.startswith("<b>")).count("<p ") >= count) if not f.startswith("<b>")]

    time.sleep(hub_module.ROUND_INTERVAL * 2)  # quiet: the next message opens a round
    sent = time.monotonic()
    publisher.publish(prefix + stream, '<p id="first"></p>')
    assert payloads(1) == ['<p id="first"></p>']
    first_latency = time.monotonic() - sent

    later = [f'<p id="m{i}"></p>' for i in range(5)]
    sent = time.monotonic()
    for message in later:  # five PUBLISH calls, each its own read on a quiet machine
        publisher.publish(prefix + stream, message)
    frames = payloads(len(later))
    waited = time.monotonic() - sent
    assert frames == ["\n".join(later)], f"{len(frames)} frames: {frames}"
    assert waited < hub_module.ROUND_INTERVAL + 1.0
    assert first_latency < 1.0
    hub.unsubscribe(viewer)


def test_a_presence_tick_refreshes_our_members_expires_stale_ones_and_pushes_the_count(
        make_hub, publisher, prefix):
    """One script call a channel (hub._PRESENCE_TICK): every local socket's heartbeat
    is refreshed (more than one ZADD chunk of 500 here), a member whose heartbeat is
    older than PRESENCE_TTL (a crashed instance's socket) is dropped, the key keeps
    a TTL, and the sockets are pushed the count."""
    from app.realtime import hub as hub_module

    channel = f"stream-{uuid.uuid4().hex[:8]}"
    hub = make_hub(audience=lambda c: (lambda n: f"<b>{n}</b>") if c.startswith("stream-") else None)
    subs = [hub.subscribe((channel,)) for _ in range(1001)]
    key = f"{prefix}viewers:{channel}"
    publisher.zadd(key, {"crashed-instance:1": time.time() - hub_module.PRESENCE_TTL - 5})
    publisher.zadd(key, {m.decode(): 0 for m in publisher.zrange(key, 0, -1) if not m.startswith(b"crashed")},
                   xx=True)  # our heartbeats look old too: the tick must bring them back
    started = time.time()

    hub._presence_tick()

    members = dict(publisher.zrange(key, 0, -1, withscores=True))
    assert b"crashed-instance:1" not in members
    assert len(members) == 1001 and min(members.values()) >= started - 1
    assert 0 < publisher.ttl(key) <= hub_module.PRESENCE_TTL * 2
    assert "<b>1001</b>" in _texts(subs[0], 3, lambda t: "<b>1001</b>" in t)
    for sub in subs:
        hub.unsubscribe(sub)
