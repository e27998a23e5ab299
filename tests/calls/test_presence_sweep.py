"""`sweep_stale_presence` (app/calls/signaling.py): a party whose pages all stopped
heartbeating — their web instance died, so no socket close said so — is reported
gone before the metering tick, and billing pauses after the grace as usual."""
from __future__ import annotations

import time

import redis

from app.calls import service, signaling
from tests.calls.helpers import fresh_call


def test_a_party_whose_pages_stopped_heartbeating_is_reported_gone(app, make_call, clock, services):
    scene = make_call()
    key = f"{app.config['REDIS_PREFIX']}call-presence:{scene.call_id}:"
    r = redis.Redis.from_url(services[1])
    # The creator's page heartbeats; the fan's last heartbeat is older than STALE_SECONDS
    # (its instance died): exactly what the sockets leave behind in Redis.
    r.zadd(key + "creator", {"page-c": time.time()})
    r.zadd(key + "fan", {"page-f": time.time() - signaling.STALE_SECONDS - 5})
    try:
        reported = signaling.sweep_stale_presence()
        assert (scene.call_id, "fan") in reported and (scene.call_id, "creator") not in reported
        call = fresh_call(scene.call_id)
        assert call.fan_missing_since is not None and call.creator_missing_since is None

        # Billing then pauses once the grace has run out, as for a closed page.
        clock.advance(app.config["PRESENCE_GRACE_SECONDS"] + 1)
        service.meter()
        call = fresh_call(scene.call_id)
        assert (call.status, call.paused_by) == ("paused", "presence")

        # A second sweep has nothing more to say about this call.
        assert all(c != scene.call_id for c, _ in signaling.sweep_stale_presence())
    finally:
        r.delete(key + "creator", key + "fan")
        r.close()


def test_parties_with_a_live_page_are_left_alone(app, make_call, services):
    scene = make_call()
    key = f"{app.config['REDIS_PREFIX']}call-presence:{scene.call_id}:"
    r = redis.Redis.from_url(services[1])
    r.zadd(key + "fan", {"page-f": time.time()})
    r.zadd(key + "creator", {"page-c": time.time() - 2})
    try:
        assert all(c != scene.call_id for c, _ in signaling.sweep_stale_presence())
        call = fresh_call(scene.call_id)
        assert call.fan_missing_since is None and call.creator_missing_since is None
    finally:
        r.delete(key + "creator", key + "fan")
        r.close()


def test_the_sweep_checks_parties_in_chunks_and_reports_exactly_the_silent_ones(app, make_call, services,
                                                                                 monkeypatch):
    """The sweep asks Redis about SWEEP_CHUNK parties per script call; a chunk boundary
    loses or shifts no one (positions come back per chunk)."""
    monkeypatch.setattr(signaling, "SWEEP_CHUNK", 3)
    scenes = [make_call() for _ in range(4)]  # 8 parties: chunks of 3, 3 and 2
    prefix = f"{app.config['REDIS_PREFIX']}call-presence:"
    r = redis.Redis.from_url(services[1])
    silent = {(scenes[0].call_id, "creator"), (scenes[2].call_id, "fan"), (scenes[3].call_id, "creator")}
    keys = []
    for scene in scenes:
        for party in ("fan", "creator"):
            key = f"{prefix}{scene.call_id}:{party}"
            keys.append(key)
            old = (scene.call_id, party) in silent
            r.zadd(key, {f"page-{party}": time.time() - (signaling.STALE_SECONDS + 5 if old else 0)})
    try:
        reported = signaling.sweep_stale_presence()
        assert {p for p in reported if p[0] in {s.call_id for s in scenes}} == silent
        for scene in scenes:
            call = fresh_call(scene.call_id)
            assert (call.fan_missing_since is not None) == ((scene.call_id, "fan") in silent)
            assert (call.creator_missing_since is not None) == ((scene.call_id, "creator") in silent)
    finally:
        r.delete(*keys)
        r.close()
