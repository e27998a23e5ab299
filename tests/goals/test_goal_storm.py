"""A tip storm into a goal (issue 18 "Must hold"): real threads, real PostgreSQL, a real
RQ worker running the room jobs while the storm lasts. Progress is exact, "reached" is
announced exactly once (counted on the channels in Redis) and `reached_at` set once,
the last state is published, and the goal and the leaderboard agree with the ledger."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from redis import Redis
from sqlalchemy import text

from app.extensions import db
from app.goals import jobs as goal_jobs
from app.goals import pushes as goal_pushes
from app.goals import service as goals
from app.leaderboard import service as leaderboard
from app.tips import service as tips
from tests.goals.workers import WorkerThread
from tests.helpers import run_together

FANS = 30
TIP = 10
REACHED = "data-goal-reached="

# Per fan, the gross tokens of their tips to the stream as the ledger has them: what their
# wallet paid in each tip transfer (`tip:<id>`), not the tips' own `amount` column.
_LEDGER_BY_FAN = text("""
SELECT a.user_id, -sum(e.amount) AS gross
  FROM tips t
  JOIN ledger_transfers tr ON tr.idempotency_key = 'tip:' || t.id AND tr.kind = 'tip'
  JOIN ledger_entries e ON e.transfer_id = tr.id
  JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'wallet'
 WHERE t.stream_id = :s AND t.id > :after
 GROUP BY a.user_id""")


class Listener:
    """Every message published on some channels (this run's Redis prefix), kept in order."""

    def __init__(self, redis_url: str, prefix: str, channels: list[str]):
        self.pubsub = Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*(prefix + c for c in channels))
        self.prefix = prefix
        self.messages: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            m = self.pubsub.get_message(timeout=0.1)
            if m:
                self.messages.append((m["channel"].decode()[len(self.prefix):], m["data"].decode()))

    def on(self, channel):
        return [html for c, html in self.messages if c == channel]

    def close(self):
        self._stop.set()
        self._thread.join()
        self.pubsub.close()


@pytest.fixture()
def storm_room(ctx, make_creator, make_fan, make_stream):
    creator = make_creator()
    stream = make_stream(creator, live=True)
    fans = [make_fan(balance=TIP * 3) for _ in range(FANS)]
    return creator, stream, fans


def test_thirty_fans_tipping_at_once_fill_a_goal_of_300_exactly_and_it_is_announced_once(
        app, ctx, services, queue, storm_room):
    creator, stream, fans = storm_room
    state = goals.set_goal(creator, stream.id, "Storm", 300)
    obs = goal_pushes.obs_goal_channel(creator.id)
    listener = Listener(services[1], app.config["REDIS_PREFIX"], [stream.channel, obs])
    time.sleep(0.2)  # subscribed before anything is published
    worker = WorkerThread(app, queue)
    try:
        ids = [f.id for f in fans]

        def tip(i):
            from app.auth.models import User
            fan = db.session.get(User, ids[i])
            return tips.send_tip(fan, creator.id, TIP, "", {"streamId": stream.id}, str(uuid.uuid4()))

        results = run_together(app, FANS, tip)
        assert [r for r in results if isinstance(r, Exception)] == []
        # Several workers refreshing the room at the same moment: still one announcement.
        run_together(app, 6, lambda i: goal_jobs.push_room(stream.id))
        worker.stop()
        assert worker.jobs_run >= 1  # the tips' own room jobs ran on the worker
        time.sleep(0.3)  # the last messages reach the listener
    finally:
        listener.close()

    db.session.expire_all()
    now = goals.current_goal(stream.id)
    assert now.goal.id == state.goal.id and now.progress == FANS * TIP == 300
    assert now.goal.reached_at is not None
    # Announced exactly once, on the page's channel and on the OBS source's.
    assert sum(REACHED in html for html in listener.on(stream.channel)) == 1
    assert sum(REACHED in html for html in listener.on(obs)) == 1
    # The last state published is the final one (nothing lost at the end of the storm).
    last_page = [h for h in listener.on(stream.channel) if 'id="stream-goal"' in h][-1]
    assert "300 / 300 tokens" in last_page and "Goal reached" in last_page
    last_obs = [h for h in listener.on(obs) if 'id="stream-goal"' in h][-1]
    assert "300 / 300 tokens" in last_obs
    # reached_at was set once: a second marking finds it set.
    assert goals.mark_reached(state.goal.id) is None

    by_fan = {uid: int(gross) for uid, gross in db.session.execute(
        _LEDGER_BY_FAN, {"s": stream.id, "after": state.goal.after_tip_id})}
    assert sum(by_fan.values()) == now.progress
    top = leaderboard.stream_top(stream.id)
    assert len(top) == 10 and all(t.total_tokens == by_fan[t.user_id] == TIP for t in top)


def test_goal_progress_and_leaderboard_agree_with_the_ledger_after_a_mixed_storm(app, ctx, storm_room):
    """Uneven amounts, some fans tipping twice, a tip before the goal: the goal's progress
    is the ledger's sum of the tips after it, the leaderboard the ledger's per-fan sums."""
    creator, stream, fans = storm_room
    tips.send_tip(fans[0], creator.id, 7, "", {"streamId": stream.id}, str(uuid.uuid4()))
    state = goals.set_goal(creator, stream.id, "Mixed", 100_000)
    ids = [f.id for f in fans]

    def tip(i):
        from app.auth.models import User
        fan = db.session.get(User, ids[i % FANS])
        return tips.send_tip(fan, creator.id, 1 + i % 9, "", {"streamId": stream.id}, str(uuid.uuid4()))

    results = run_together(app, 45, tip)
    assert [r for r in results if isinstance(r, Exception)] == []
    db.session.expire_all()
    by_fan = {uid: int(g) for uid, g in db.session.execute(
        _LEDGER_BY_FAN, {"s": stream.id, "after": state.goal.after_tip_id})}
    assert goals.current_goal(stream.id).progress == sum(by_fan.values()) == sum(1 + i % 9 for i in range(45))
    all_time = {uid: int(g) for uid, g in db.session.execute(_LEDGER_BY_FAN, {"s": stream.id, "after": 0})}
    top = leaderboard.stream_top(stream.id)
    expected = sorted(all_time.values(), reverse=True)[:10]
    assert [t.total_tokens for t in top] == expected
    assert all(all_time[t.user_id] == t.total_tokens for t in top)
