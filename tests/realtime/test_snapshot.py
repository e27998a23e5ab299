"""Join snapshots (app/realtime/snapshot.py): a stream socket's connect state served from
Redis, kept current by the publishers, against the session's real PostgreSQL and Redis.

A "join" here is what `/ws/channels/<channel>` does after the handshake: subscribe to
the hub, then read the connect state (`Registry.connect_state`)."""
from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid

import psycopg
import pytest
import redis
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.auth.models import User
from app.extensions import db
from app.realtime import snapshot
from app.realtime.bus import publish, snapshot_changed
from app.realtime.channels import registry
from app.realtime.hub import frame_payload
from app.realtime.sockets import hub


@contextlib.contextmanager
def statements(app):
    """The SQL statements the app's engine runs inside the block (any thread)."""
    seen: list[str] = []
    lock = threading.Lock()

    def count(_conn, _cursor, statement, *_args):
        with lock:
            seen.append(statement)
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def join_state(app, channel: str, fresh: bool = False) -> str | None:
    """The connect state a socket of `channel` gets, read in an app context of its own."""
    with app.app_context():
        try:
            return registry().connect_state(registry().channel(channel), channel, None, fresh)
        finally:
            db.session.remove()


def key_of(app, channel: str) -> str:
    return snapshot.snapshot_key(app.config["REDIS_PREFIX"], channel)


@pytest.fixture()
def rdb(services):
    client = redis.Redis.from_url(services[1])
    yield client
    client.close()


@pytest.fixture()
def live(make_stream):
    """A live stream, its snapshot not yet cached."""
    return make_stream(live=True)


def tip(fan_id: int, stream, amount: int = 5, message: str = "") -> int:
    """A tip to `stream` through the real service (commits, then publishes); its id."""
    from app.tips import service as tips
    fan = db.session.get(User, fan_id)
    return tips.send_tip(fan, stream.creator_id, amount, message, {"streamId": stream.id},
                         f"snap-{uuid.uuid4()}").tip.id


def recent_ids(state: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="recent-tip-(\d+)"', state)]


def test_a_second_join_is_served_from_the_snapshot_without_touching_postgresql(app, live, make_fan):
    fan = make_fan(balance=100)
    tipped = tip(fan.id, live)
    with statements(app) as first:
        state = join_state(app, live.channel)
    assert first, "the first join renders from PostgreSQL"
    assert recent_ids(state) == [tipped] and 'id="stream-status"' in state and 'id="chat-history"' in state
    assert 'id="stream-goal"' in state and 'id="stream-leaderboard"' in state

    with statements(app) as second:
        again = join_state(app, live.channel)
    assert second == [], second
    assert again == state


def test_the_viewer_count_is_read_per_join_and_joins_do_not_invalidate_the_snapshot(app, live):
    state = join_state(app, live.channel)
    assert 'id="viewer-count"' in state and "0 watching" in state
    with app.app_context():
        subs = [hub().subscribe((live.channel,)) for _ in range(3)]
    try:
        with statements(app) as seen:
            counted = join_state(app, live.channel)
        assert seen == [], "a join (presence) must not invalidate the snapshot"
        assert "3 watching" in counted and "0 watching" not in counted
        assert counted.replace("3 watching", "0 watching") == state
    finally:
        with app.app_context():
            for sub in subs:
                hub().unsubscribe(sub)


def test_a_join_after_a_publish_on_the_channel_renders_again_and_shows_the_event(app, live, make_fan):
    fan = make_fan(balance=100)
    join_state(app, live.channel)
    with app.app_context():
        tipped = tip(fan.id, live)  # count_and_publish's script raises the generation
    with statements(app) as seen:
        state = join_state(app, live.channel)
    assert seen and recent_ids(state) == [tipped]
    with app.app_context():  # a plain publish (chat, status) too
        publish(live.channel, "<p>something changed</p>")
    with statements(app) as seen:
        join_state(app, live.channel)
    assert seen, "a message on the channel must invalidate its snapshot"


def test_a_goal_set_is_shown_to_joins_once_the_room_refresh_publishes_it(app, live, queue):
    """Goals publish with their own script: the refresh job raises the generation first."""
    from app.goals import service as goals
    from app.goals.jobs import push_room
    join_state(app, live.channel)
    with app.app_context():
        creator = db.session.get(User, live.creator_id)
        goals.set_goal(creator, live.id, "New mic", 500)
        assert push_room(live.id)
        db.session.remove()
    assert "New mic" in join_state(app, live.channel)


def test_snapshot_changed_invalidates_only_snapshotted_channels(app, live, rdb):
    join_state(app, live.channel)
    gen = int(rdb.hget(key_of(app, live.channel), "g"))  # going live published the status
    with app.app_context():
        assert snapshot_changed([live.channel, "user:1", "call-x"])
    assert int(rdb.hget(key_of(app, live.channel), "g")) == gen + 1
    assert not rdb.exists(key_of(app, "user:1")) and not rdb.exists(key_of(app, "call-x"))


def test_a_snapshot_older_than_max_age_is_rendered_again(app, live, rdb):
    join_state(app, live.channel)
    rdb.hset(key_of(app, live.channel), "at", repr(time.time() - snapshot.MAX_AGE - 0.1))
    with statements(app) as seen:
        join_state(app, live.channel)
    assert seen


def test_a_resync_renders_afresh_whatever_the_cache_says(app, live):
    """After a Redis outage publishes may have failed without raising the generation."""
    join_state(app, live.channel)
    with statements(app) as seen:
        join_state(app, live.channel, fresh=True)
    assert seen


def test_snapshot_keys_expire(app, live, rdb):
    join_state(app, live.channel)
    key = key_of(app, live.channel)
    assert 0 < rdb.ttl(key) <= snapshot.TTL
    rdb.persist(key)
    with app.app_context():
        publish(live.channel, "<p>x</p>")
    assert 0 < rdb.ttl(key) <= snapshot.TTL, "a publish renews the expiry"


def test_the_cache_off_renders_every_join(make_app, live):
    off = make_app(SNAPSHOT_CACHE=False)
    join_state(off, live.channel)
    with statements(off) as seen:
        state = join_state(off, live.channel)
    assert seen and 'id="stream-status"' in state


def test_redis_down_joins_are_rendered_from_postgresql(make_app, services, live, make_fan):
    fan = make_fan(balance=100)
    tipped = tip(fan.id, live)
    down = make_app((services[0], "redis://127.0.0.1:1/0"))  # nothing listens on port 1
    for _ in range(2):
        with statements(down) as seen:
            state = join_state(down, live.channel)
        assert seen and recent_ids(state) == [tipped] and 'id="stream-status"' in state
        assert 'id="viewer-count"' not in state  # unknown while Redis is down


def renders(seen: list[str]) -> int:
    """How many renders of a stream's state ran these statements: each reads the stream
    by its channel once for itself and once for each share (chat, goal, leaderboard)."""
    return sum("streams.channel =" in statement for statement in seen) / 4


def test_concurrent_joins_in_one_process_share_one_render(app, live, rdb):
    """Single flight: 20 joins of a cold channel at once render its state once. The goal
    table is locked meanwhile, so a render takes until every joiner has missed the cache."""
    with statements(app) as one:
        join_state(app, live.channel, fresh=True)
    assert renders(one) == 1
    rdb.delete(key_of(app, live.channel))
    states = []

    def joiner():
        states.append(join_state(app, live.channel))
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as locker, statements(app) as many:
        locker.execute("LOCK TABLE stream_goals IN ACCESS EXCLUSIVE MODE")
        threads = [threading.Thread(target=joiner) for _ in range(20)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        assert not states, "the lock holds the render back"
        locker.rollback()
        for t in threads:
            t.join()
    assert len(states) == 20 and len(set(states)) == 1
    assert renders(many) == 1


def test_no_join_misses_a_tip_published_before_its_subscription_while_tips_and_joins_hammer(
        app, live, make_fan):
    """Tippers tip through the real service while joiners subscribe and read the state:
    every tip published before a joiner's subscription returned is in its state (or
    older than all ten recent tips it shows), or delivered to it."""
    fans = [make_fan(balance=100_000).id for _ in range(4)]
    stream_id, channel = live.id, live.channel
    published: list[tuple[float, int]] = []  # (when tip_sent returned, tip id)
    stop = threading.Event()
    errors: list[BaseException] = []
    joins = []

    def tipper(fan_id):
        from app.streams.models import Stream
        try:
            with app.app_context():
                stream = db.session.get(Stream, stream_id)
                while not stop.is_set():
                    tip_id = tip(fan_id, stream)
                    published.append((time.monotonic(), tip_id))
                    db.session.remove()
                    stream = db.session.get(Stream, stream_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def joiner():
        try:
            for _ in range(15):
                with app.app_context():
                    sub = hub().subscribe((channel,))
                    subscribed = time.monotonic()
                    before = {tip_id for when, tip_id in list(published) if when < subscribed}
                    state = join_state(app, channel)
                    time.sleep(0.3)  # let the hub deliver what was published around the join
                    delivered = []
                    while not sub.queue.empty():
                        message = sub.queue.get_nowait()
                        if isinstance(message, bytes):
                            delivered.append(frame_payload(message).decode())
                    hub().unsubscribe(sub)
                    joins.append((before, state, "\n".join(delivered)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    tippers = [threading.Thread(target=tipper, args=(f,)) for f in fans]
    for t in tippers:
        t.start()
    time.sleep(0.3)
    joiners = [threading.Thread(target=joiner) for _ in range(6)]
    for t in joiners:
        t.start()
    for t in joiners:
        t.join()
    stop.set()
    for t in tippers:
        t.join()
    assert not errors, errors
    assert len(joins) == 90 and len(published) > 30, (len(joins), len(published))

    missed = []
    for before, state, delivered in joins:
        listed = recent_ids(state)
        assert listed and listed == sorted(listed, reverse=True)
        shown = set(listed) | {int(i) for i in re.findall(r'id="tip-(\d+)"', delivered)}
        older_than_shown = len(listed) == 10 and min(listed)
        missed += [t for t in before if t not in shown and not (older_than_shown and t < older_than_shown)]
    assert not missed, f"{len(missed)} tips published before a join are neither in its state nor delivered"


def test_a_cached_join_to_a_public_stream_runs_no_sql_from_handshake_to_state(app, live_api, people, viewers):
    """The stream behind a channel is remembered per process (its id, creator and type
    never change): with the snapshot cached, a logged-out join touches no PostgreSQL."""
    _creator, creator_h, _fans = people(fans=0)
    stream = live_api.live_stream(creator_h)
    url = live_api.ws(f"/ws/channels/{stream['channel']}")
    assert 'id="stream-status"' in viewers(url).receive(5)
    with statements(app) as seen:
        state = viewers(url).receive(5)
    assert 'id="stream-status"' in state and 'id="chat-history"' in state
    assert seen == [], seen


def test_a_private_streams_ticket_is_checked_on_every_join(app, live_server, make_fan, make_stream, api_headers):
    """Only the stream is remembered, not the access: a refunded ticket stops the next join."""
    from app.streams import service as streams
    from app.streams import tickets
    from tests.realtime.helpers import handshake
    stream = make_stream(type_="private", ticket_price=100)
    fan = make_fan(balance=1_000)
    tickets.checkout(fan, stream)
    path = f"/ws/channels/{stream.channel}"
    assert handshake(live_server, path, api_headers(fan)).status == 101
    creator = db.session.get(User, stream.creator_id)
    streams.change_status(creator, stream.id, "cancel")
    tickets.refund_show(stream.id)
    refused = handshake(live_server, path, api_headers(fan))
    assert refused.status == 403 and b"no_access" in refused.body


def test_a_process_holding_an_older_render_gets_the_newer_one_another_process_stored(
        app, make_app, live, make_fan):
    """Each process keeps its last render and Redis sends the HTML only when the hash holds
    another one: after another instance re-rendered, this one serves the new state."""
    other = make_app()
    fan = make_fan(balance=100)
    join_state(app, live.channel)
    with app.app_context():
        tipped = tip(fan.id, live)
    assert recent_ids(join_state(other, live.channel)) == [tipped]  # rendered and stored there
    with statements(app) as seen:
        state = join_state(app, live.channel)
    assert seen == [] and recent_ids(state) == [tipped]
