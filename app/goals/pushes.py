"""How a stream's room (its goal bar and its leaderboard) reaches viewers without
slowing tips down (DESIGN.md §12).

A goal set or cleared calls `room_changed(stream id)`, and a tip to a stream takes
`room_claim(stream id)` in the script call that publishes it: one `SET NX EX` in
Redis claims `room-push:<stream id>`, and only the caller that wins the claim
queues the job (`app.goals.jobs.push_room`). So however hard a room is
tipped, at most one refresh per stream is queued at a time; a tip takes the claim
in the round trip that publishes it (`room_claim`), so the room costs it no round
trip of its own. The job drops the claim and draws a ticket (one round trip), then
reads the goal's progress and the top 10 from PostgreSQL (the truth) and publishes
them: a change committed before the job's read is in what it publishes, and one
committed after finds no claim and queues the next refresh. The last state is
always published.

Two workers may run two refreshes of one room at once; the one that read first
could publish last and show a stale bar. So each refresh draws a ticket before it
reads (`HINCRBY room-seq:<id> drawn`), and publishes its state only if no later
ticket's state went out before (`_PUBLISH_NEWER`, one script): what viewers see
never goes backwards. The goal-reached announcement is not state: its one writer
(`service.mark_reached`) publishes it whatever the ticket says.

Redis down: no refresh (the page's next load or reconnect shows the truth).
"""
from __future__ import annotations

import logging

from flask import current_app
from redis import RedisError

from app.realtime import fragments
from app.realtime.bus import Claim
from app.redis_client import get_redis, report_failure, report_recovery

log = logging.getLogger(__name__)
# How long a queued refresh holds its stream's claim at most: should the job be lost,
# the next tip queues a new one after this.
CLAIM_SECONDS = 30
_SEQ_SECONDS = 24 * 3600


def obs_goal_channel(creator_id: int) -> str:
    """Where the creator's goal OBS source (goals.live's `/ws/overlay/<secret>/goal`) listens."""
    return f"overlay-goal:{creator_id}"


def _key(kind: str, stream_id: int) -> str:
    return f"{current_app.config['REDIS_PREFIX']}{kind}:{stream_id}"


def claim_key(stream_id: int) -> str:
    return _key("room-push", stream_id)


def room_changed(stream_id: int) -> None:
    """Tokens were tipped to the stream, or its goal changed (committed): queue one
    refresh of its goal bar and leaderboard unless one is queued already."""
    try:
        won = get_redis().set(claim_key(stream_id), 1, nx=True, ex=CLAIM_SECONDS)
    except RedisError as exc:
        report_failure(f"room refresh of stream {stream_id}", exc)
        return
    if won:
        room_claimed(stream_id)


def room_claim(stream_id: int) -> Claim:
    """`room_changed`'s claim, for a caller that takes it in its own publish's round trip
    (a tip: `bus.count_publish_and_claim`); whoever wins it calls `room_claimed`."""
    return Claim(claim_key(stream_id), CLAIM_SECONDS)


def room_claimed(stream_id: int) -> None:
    """The caller won the stream's claim: queue the refresh."""
    from app.jobs import enqueue
    from app.goals.jobs import push_room
    enqueue(push_room, stream_id)


def start_refresh(stream_id: int) -> int | None:
    """For the refresh job, before it reads: drop the stream's claim and draw a ticket
    (one round trip). None if Redis is down (nothing will be published anyway)."""
    seq = _key("room-seq", stream_id)
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.delete(claim_key(stream_id))
        pipe.hincrby(seq, "drawn", 1)
        pipe.expire(seq, _SEQ_SECONDS)
        return int(pipe.execute()[1])
    except RedisError as exc:
        report_failure(f"room refresh of stream {stream_id}", exc)
        return None


# KEYS[1] the room's sequence hash; ARGV[1] the ticket, ARGV[2] how many messages go out
# whatever the ticket, then channel/html pairs: those first, then the state's.
_PUBLISH_NEWER = """
local always = tonumber(ARGV[2])
local newer = tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'published') or '0')
if newer then redis.call('HSET', KEYS[1], 'published', ARGV[1]) end
local sent = 0
for i = 3, #ARGV, 2 do
    if newer or sent < always then
        redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
    end
    sent = sent + 1
end
return newer and 1 or 0
"""


def publish_refresh(stream_id: int, ticket: int, state: list[tuple[str, str]],
                    always: list[tuple[str, str]] = ()) -> bool:
    """Publish `always` (the announcement), and `state` if `ticket` is newer than the
    last one published for the stream; one round trip. True if the state went out."""
    prefix = current_app.config["REDIS_PREFIX"]
    args = [ticket, len(always)] + [p for channel, html in [*always, *state] for p in (prefix + channel, html)]
    script = current_app.extensions.get("goals_publish_script")
    try:
        if script is None:
            script = current_app.extensions["goals_publish_script"] = get_redis().register_script(_PUBLISH_NEWER)
        newer = bool(script(keys=[_key("room-seq", stream_id)], args=args))
        report_recovery()
        return newer
    except RedisError as exc:
        report_failure(f"room of stream {stream_id} not delivered", exc)
        return False


def goal_html(state, *, obs: bool = False) -> str:
    """The goal bar, out of band (the same partial as the page's)."""
    return fragments.render("goals/_goal.html", goal=state, oob=True, obs=obs)


def reached_html(state) -> str:
    """The one-time "goal reached" announcement."""
    return fragments.render("goals/_reached.html", goal=state, oob=True)
