"""Going live notifies every follower (DESIGN.md §13, issue 17): by a job queued after
the commit, never in the creator's request; one notification per follower and stream
however often the job (or its sweep) runs; a real RQ worker runs it."""
from __future__ import annotations

import time
import uuid

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select, text

from app import jobs
from app.extensions import db
from app.follows import service as follows
from app.notifications import cron, service
from app.notifications.models import Notification
from app.redis_client import get_redis
from tests.notifications.conftest import notifications_of

FOLLOWERS = 5_000


def _queue(services) -> Queue:
    return Queue(jobs.queue_name(), connection=Redis.from_url(services[1]))


def _announce_jobs(queue: Queue, stream_id: int, before: set[str]) -> list[Job]:
    new = [j for j in queue.job_ids if j not in before]
    return [job for job in Job.fetch_many(new, connection=queue.connection)
            if job is not None and job.func_name == "app.notifications.jobs.announce_live"
            and tuple(job.args) == (stream_id,)]


def _add_followers(creator_id: int, n: int) -> None:
    """n new fans following `creator_id`, written set-based in SQL (fast)."""
    tag = uuid.uuid4().hex[:10]
    db.session.execute(text(
        "WITH fans AS (INSERT INTO users (email, password_hash, display_name, role) "
        "  SELECT 'bulk-' || :tag || '-' || i || '@example.com', 'x', 'Bulk fan ' || i, 'fan' "
        "  FROM generate_series(1, :n) AS i RETURNING id) "
        "INSERT INTO follows (follower_id, creator_id) SELECT id, :creator FROM fans"),
        {"tag": tag, "n": n, "creator": creator_id})
    db.session.commit()


def _notified(stream_id: int) -> dict[int, int]:
    """{user id: notifications for this stream}."""
    db.session.rollback()
    return dict(db.session.execute(select(Notification.user_id, func.count())
                                   .where(Notification.dedupe_key == f"live:{stream_id}")
                                   .group_by(Notification.user_id)).tuples().all())


def _followers(creator_id: int) -> set[int]:
    return set(db.session.scalars(follows.follower_ids(creator_id)))


def test_starting_a_stream_queues_the_announcement_instead_of_writing_it(client, api_headers, services,
                                                                          make_stream, followed):
    creator, fans = followed(2)
    stream = make_stream(creator)
    queue = _queue(services)
    before = set(queue.job_ids)
    assert client.post(f"/api/streams/{stream.id}/start", headers=api_headers(creator)).status_code == 200
    assert len(_announce_jobs(queue, stream.id, before)) == 1, "going live must queue exactly one announcement"
    assert _notified(stream.id) == {}, "the request must not notify followers itself"


def test_5000_followers_start_as_fast_as_0_then_each_gets_exactly_one(client, api_headers, services, make_creator,
                                                                      make_stream):
    lonely, popular = make_creator(), make_creator()
    _add_followers(popular.id, FOLLOWERS)
    queue = _queue(services)

    def start_time(creator) -> float:
        """The quickest of three starts: one slow moment on a shared machine is not the code."""
        times = []
        for _ in range(3):
            stream = make_stream(creator)
            before = set(queue.job_ids)
            started = time.perf_counter()
            resp = client.post(f"/api/streams/{stream.id}/start", headers=api_headers(creator))
            times.append(time.perf_counter() - started)
            assert resp.status_code == 200, resp.get_data(as_text=True)
            assert len(_announce_jobs(queue, stream.id, before)) == 1
        return min(times), stream.id

    start_time(lonely)  # warm up (first request paths, connections)
    baseline, _ = start_time(lonely)
    with_followers, stream_id = start_time(popular)
    assert with_followers <= 3 * baseline + 0.05, (with_followers, baseline)
    assert _notified(stream_id) == {}, "queued, not run inline"

    assert service.announce_live(stream_id) == FOLLOWERS
    assert service.announce_live(stream_id) == 0, "a second run notifies no one again"
    notified = _notified(stream_id)
    assert set(notified) == _followers(popular.id) and len(notified) == FOLLOWERS
    assert set(notified.values()) == {1}, "every follower has exactly one notification"


def test_the_notification_names_the_creator_and_title_and_links_to_the_stream(followed, make_stream):
    creator, [fan] = followed(1)
    stream = make_stream(creator, title="Friday <jam>", live=True)
    service.announce_live(stream.id)
    [n] = notifications_of(fan.id)
    assert (n.type, n.text, n.url) == ("live", f"{creator.display_name} is live: Friday <jam>",
                                       f"/streams/{stream.id}")
    assert notifications_of(creator.id) == [], "the creator is not told about their own stream"


def test_non_followers_and_unfollowers_are_not_notified(followed, make_fan, make_stream):
    creator, [stays, leaves] = followed(2)
    stranger = make_fan()
    follows.unfollow(leaves, creator.id)
    stream = make_stream(creator, live=True)
    service.announce_live(stream.id)
    assert set(_notified(stream.id)) == {stays.id}
    assert notifications_of(stranger.id) == []


def test_a_stream_that_ended_before_the_job_ran_is_announced_to_no_one(followed, make_stream):
    from app.streams import service as streams
    creator, [fan] = followed(1)
    stream = make_stream(creator, live=True)
    streams.change_status(creator, stream.id, "end")
    assert service.announce_live(stream.id) == 0
    assert notifications_of(fan.id) == []


def test_an_unknown_stream_is_announced_to_no_one(ctx):
    assert service.announce_live(2**62) == 0


def test_a_real_rq_worker_runs_the_queued_announcement(client, api_headers, queue, run_jobs, followed, make_stream):
    creator, fans = followed(3)
    stream = make_stream(creator)
    # The worker's jobs end their DB session (app.jobs): keep plain ids, not loaded rows.
    stream_id, fan_ids = stream.id, [fan.id for fan in fans]
    before = set(queue.job_ids)
    assert client.post(f"/api/streams/{stream_id}/start", headers=api_headers(creator)).status_code == 200
    [job] = _announce_jobs(queue, stream_id, before)
    run_jobs()  # a real RQ worker (SimpleWorker, burst), after ending the test's transaction
    job.refresh()
    assert job.get_status() == "finished", job.latest_result()
    assert job.return_value() == 3
    assert _notified(stream_id) == {fan_id: 1 for fan_id in fan_ids}


# The sweep is a @job: it ends the session, so these tests keep ids, not objects.


def test_the_sweep_announces_a_live_stream_whose_job_was_lost_and_only_once(followed, make_stream):
    creator, fans = followed(2)
    fan_ids = [fan.id for fan in fans]
    sid = make_stream(creator, live=True).id  # its job sits in the queue; no worker runs it here
    assert _notified(sid) == {}
    assert cron.sweep_live_announcements().get(sid) == 2
    assert _notified(sid) == dict.fromkeys(fan_ids, 1)
    assert sid not in cron.sweep_live_announcements(), "announced streams are marked and skipped"
    assert service.announce_live(sid) == 0  # the lost job turning up late changes nothing


def test_the_sweep_announces_again_harmlessly_when_the_mark_is_gone(followed, make_stream):
    creator, fans = followed(2)
    fan_ids = [fan.id for fan in fans]
    sid = make_stream(creator, live=True).id
    service.announce_live(sid)
    get_redis().delete(service._announced_key(sid))
    assert cron.sweep_live_announcements().get(sid) == 0
    assert _notified(sid) == dict.fromkeys(fan_ids, 1)


@pytest.mark.parametrize("minutes_ago, status, swept", [(5, "live", True), (cron.ANNOUNCE_WINDOW_MINUTES + 5, "live",
                                                                                False), (5, "ended", False)])
def test_the_sweep_only_looks_at_streams_live_now_that_started_within_its_window(followed, make_stream,
                                                                                  minutes_ago, status, swept):
    creator, [fan] = followed(1)
    fan_id, sid = fan.id, make_stream(creator, live=True).id
    db.session.execute(text("UPDATE streams SET started_at = now() - make_interval(mins => :m), status = :s "
                            "WHERE id = :id"), {"m": minutes_ago, "s": status, "id": sid})
    db.session.commit()
    assert (sid in cron.sweep_live_announcements()) is swept
    assert len(notifications_of(fan_id)) == (1 if swept else 0)


def test_the_sweep_is_in_the_workers_schedule(app):
    import worker
    with app.app_context():
        assert (cron.sweep_live_announcements, cron.ANNOUNCE_SWEEP_SECONDS) in worker.cron_jobs()


def test_with_redis_down_going_live_still_works_and_the_sweep_announces_it_later(make_app, services, followed,
                                                                               make_stream):
    from app.streams import service as streams
    creator, fans = followed(2)
    creator_id, fan_ids = creator.id, [fan.id for fan in fans]
    sid = make_stream(creator).id
    no_redis = make_app((services[0], "redis://127.0.0.1:1/0"))
    with no_redis.app_context():
        from app.auth.models import User
        started = streams.change_status(db.session.get(User, creator_id), sid, "start")
        assert started.status == "live"  # the job could not be queued: logged, not an error
        db.session.remove()
    assert _notified(sid) == {}
    assert cron.sweep_live_announcements().get(sid) == 2
    assert _notified(sid) == dict.fromkeys(fan_ids, 1)
