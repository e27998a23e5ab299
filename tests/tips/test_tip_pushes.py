"""What a tip publishes after commit costs one Redis round trip (issue 19): the pops, the
creator's feed and badge, the sender's balance, and the claims of the jobs that refresh the
creator's earnings and the stream's room (app/wallet, app/goals) go in one script call; a
job is queued only by the tip that won its claim."""
from __future__ import annotations

import threading
import uuid

import pytest
import redis.connection

from app.goals.pushes import claim_key
from app.redis_client import get_redis
from app.tips import service as tips
from app.wallet.pushes import earnings_claim_key


@pytest.fixture()
def redis_round_trips(monkeypatch):
    """A list that gets one entry per command (or pipeline) this thread sends to Redis."""
    sent, me = [], threading.get_ident()
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        if threading.get_ident() == me:
            sent.append(command)
        return original(self, command, check_health)
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


def _warm_up(make_fan, make_stream, queue) -> None:
    """One tip into another stream first: the client's connection, the script's load and RQ's
    one-off server version check are behind us before counting."""
    other = make_stream(live=True)
    tips.send_tip(make_fan(balance=100), other.creator_id, 10, "", {"streamId": other.id}, str(uuid.uuid4()))
    queue.empty()


def _queued(queue) -> list[str]:
    return sorted(job.func_name for job in queue.jobs)


def test_a_stream_tip_claims_both_refreshes_in_its_publish_round_trip(ctx, make_fan, make_stream, queue, run_jobs,
                                                                      redis_round_trips):
    stream = make_stream(live=True)
    run_jobs()  # the room's refresh that going live queued (app/goals) ran: its claim is free
    fan = make_fan(balance=1_000)
    _warm_up(make_fan, make_stream, queue)
    redis_round_trips.clear()
    tips.send_tip(fan, stream.creator_id, 10, "first", {"streamId": stream.id}, str(uuid.uuid4()))
    # The publish and its claims, then one round trip per job queued by the claims it won.
    assert len(redis_round_trips) == 3
    assert _queued(queue) == ["app.goals.jobs.push_room", "app.wallet.jobs.push_earnings"]
    assert 0 < get_redis().ttl(claim_key(stream.id)) <= 30
    assert 0 < get_redis().ttl(earnings_claim_key(stream.creator_id)) <= 60

    redis_round_trips.clear()
    tips.send_tip(fan, stream.creator_id, 10, "second", {"streamId": stream.id}, str(uuid.uuid4()))
    assert len(redis_round_trips) == 1  # both refreshes already queued: nothing more
    assert _queued(queue) == ["app.goals.jobs.push_room", "app.wallet.jobs.push_earnings"]


def test_a_tip_after_the_refreshes_ran_queues_them_again(ctx, make_fan, make_stream, queue, run_jobs):
    stream = make_stream(live=True)
    fan = make_fan(balance=1_000)
    tips.send_tip(fan, stream.creator_id, 10, "", {"streamId": stream.id}, str(uuid.uuid4()))
    run_jobs()  # the jobs drop the claims before they read
    assert _queued(queue) == []
    tips.send_tip(fan, stream.creator_id, 10, "", {"streamId": stream.id}, str(uuid.uuid4()))
    assert _queued(queue) == ["app.goals.jobs.push_room", "app.wallet.jobs.push_earnings"]


def test_a_tip_without_a_stream_claims_only_the_earnings_refresh(ctx, make_fan, make_creator, make_stream, queue,
                                                                 redis_round_trips):
    creator, fan = make_creator(), make_fan(balance=1_000)
    _warm_up(make_fan, make_stream, queue)
    redis_round_trips.clear()
    tips.send_tip(fan, creator.id, 10, "", None, str(uuid.uuid4()))
    assert len(redis_round_trips) == 2  # the publish and its claim, then the job it won
    assert _queued(queue) == ["app.wallet.jobs.push_earnings"]
