"""The creator's goal OBS source follows their streams' status (DESIGN.md §12 "Tip goal"):
it shows a stream's goal as soon as the stream goes live and drops it once the stream is
over. Before, it changed only when a tip or a goal edit refreshed a live stream's room, so
an ended stream's goal stayed on the broadcast until OBS reconnected.

Real PostgreSQL and Redis; the room jobs run on a real RQ worker (`run_jobs`)."""
from __future__ import annotations

import pytest

from app.goals import pushes as goal_pushes
from app.goals import service as goals
from app.streams import service as streams
from tests.helpers import published


@pytest.fixture()
def obs_goal_pushes(ctx, run_jobs):
    """obs_goal_pushes(creator_id): a context collecting the goal bars published to the
    creator's goal OBS source while the block runs and once the jobs it queued have run."""
    return lambda creator_id: published(goal_pushes.obs_goal_channel(creator_id), run_jobs)


def bar_title(html: str) -> str | None:
    """The goal title a pushed OBS bar shows, or None for the hidden, empty bar."""
    assert 'id="stream-goal"' in html and "obs-goal" in html
    if " hidden" in html.split(">", 1)[0]:
        assert "goal-title" not in html
        return None
    return html.split('class="goal-title">', 1)[1].split("</h2>", 1)[0].split("</span>", 1)[1]


def test_going_live_puts_the_streams_goal_on_the_obs_source(ctx, make_creator, make_stream, obs_goal_pushes,
                                                            run_jobs):
    creator = make_creator()
    stream = make_stream(creator)
    goals.set_goal(creator, stream.id, "New mic", 500)
    run_jobs()  # the goal's own refresh ran while the stream was scheduled
    with obs_goal_pushes(creator.id) as pushed:
        streams.change_status(creator, stream.id, "start")
    assert [bar_title(h) for h in pushed] == ["New mic"]


@pytest.mark.parametrize("action", ["end", "cancel"])
def test_a_stream_that_is_over_leaves_the_obs_source(ctx, make_creator, make_stream, obs_goal_pushes, run_jobs,
                                                     action):
    creator = make_creator()
    stream = make_stream(creator, live=True)
    goals.set_goal(creator, stream.id, "New mic", 500)
    run_jobs()
    with obs_goal_pushes(creator.id) as pushed:
        streams.change_status(creator, stream.id, action)
    assert [bar_title(h) for h in pushed] == [None]


def test_ending_one_of_two_live_streams_shows_the_other_ones_goal(ctx, make_creator, make_stream,
                                                                 obs_goal_pushes, run_jobs):
    creator = make_creator()
    first, second = make_stream(creator, live=True), make_stream(creator, live=True)
    goals.set_goal(creator, first.id, "First goal", 500)
    goals.set_goal(creator, second.id, "Second goal", 500)
    run_jobs()
    with obs_goal_pushes(creator.id) as pushed:
        streams.change_status(creator, second.id, "end")
    assert [bar_title(h) for h in pushed] == ["First goal"]
    # And what a reconnecting OBS source is served agrees.
    assert goals.obs_goal(creator.id).goal.title == "First goal"
