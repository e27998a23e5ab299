"""The goals' queued job: refreshing a stream's room (goal bar and leaderboard) for
every viewer, and on the creator's goal OBS source. Queued by
`pushes.room_changed`, at most one per stream at a time (see pushes.py)."""
from __future__ import annotations

from app.extensions import db
from app.goals import pushes, service
from app.jobs import job
from app.leaderboard.pushes import leaderboard_html
from app.leaderboard.service import forget_king, stream_top
from app.realtime.bus import snapshot_changed
from app.streams.models import Stream


@job
def push_room(stream_id: int) -> bool:
    """Read the stream's goal progress and top tippers and publish them; announce the
    goal reached if this run is the one that marks it. Returns whether the state was
    published (False: a newer refresh beat it, or Redis is down). Harmless twice."""
    ticket = pushes.start_refresh(stream_id)
    stream = db.session.get(Stream, stream_id)
    if ticket is None or stream is None:
        return False
    state = service.current_goal(stream_id)
    top = stream_top(stream_id)
    forget_king(stream.creator_id)  # the board's crown is read now, not up to a minute ago
    announce = []
    if state is not None and state.reached and state.goal.reached_at is None:
        reached_at = service.mark_reached(state.goal.id)
        if reached_at is not None:
            state.goal.reached_at = reached_at
            announce.append((stream.channel, pushes.reached_html(state)))
            if stream.status == "live":
                announce.append((pushes.obs_goal_channel(stream.creator_id), pushes.reached_html(state)))
    messages = [(stream.channel, pushes.goal_html(state) + leaderboard_html(stream, top))]
    # The creator's goal OBS source shows their live stream's goal: this one while it is live;
    # else what it shows now (the stream went live or ended, which queues this refresh: another
    # live stream's goal, or nothing, and the bar hides).
    obs_state = state if stream.status == "live" else service.obs_goal(stream.creator_id)
    messages.append((pushes.obs_goal_channel(stream.creator_id), pushes.goal_html(obs_state, obs=True)))
    # A goal set or cleared is announced only here, by goals' own script: joins must stop
    # being served a cached state without it before that PUBLISH (app/realtime/snapshot.py).
    snapshot_changed([stream.channel])
    return pushes.publish_refresh(stream_id, ticket, messages, announce)
