"""Real encrypted pushes (RFC 8291, aes128gcm) signed with VAPID (RFC 8292), sent by the
push job to a local stand-in push service and decrypted with the subscription's keys
(app/push/jobs.py; DESIGN.md §13)."""
from __future__ import annotations

import logging
import time
import uuid

from sqlalchemy import select

from app.calls import service as calls
from app.extensions import db
from app.push.jobs import send_push
from app.push.models import PushSubscription
from app.push.service import push_to_users
from app.tips import service as tips
from tests.conftest import close_open_calls
from tests.push.receiver import vapid_claims


def stored(endpoint: str) -> PushSubscription | None:
    db.session.rollback()
    return db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))


def assert_signed_for(app, receiver, received) -> dict:
    """The push carries a VAPID token signed with the app's key for this push service, and
    the RFC 8030/8291 headers; returns the token's claims."""
    claims, key = vapid_claims(received.headers["authorization"])
    assert key == app.config["VAPID_PUBLIC_KEY"]
    assert claims["aud"] == receiver.origin
    assert claims["sub"] == app.config["VAPID_SUBJECT"]
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert received.headers["content-encoding"] == "aes128gcm"
    return claims


def test_a_tip_to_a_creator_with_tips_on_arrives_encrypted_and_signed(app, ctx, make_creator, make_fan, subscribe,
                                                                       receiver, queue, run_jobs):
    creator = make_creator()
    fan = make_fan(balance=500, name="Fan Xavier")
    phone = subscribe(creator, "creator-phone", ["tips"])
    tips.send_tip(fan, creator.id, 50, "great show", None, str(uuid.uuid4()))
    assert receiver.received == []  # sent by the job, never in the request
    assert [job.func_name for job in queue.jobs] == ["app.wallet.jobs.push_earnings", "app.push.jobs.send_push"]
    run_jobs()
    (received,) = receiver.to("creator-phone")
    assert_signed_for(app, receiver, received)
    assert received.headers["ttl"] == "86400" and received.headers["urgency"] == "normal"
    assert b"great show" not in received.body  # encrypted on the wire
    assert phone.decrypt(received.body) == {"title": "New tip: 50 tokens",
                                            "body": "Fan Xavier tipped you 50 tokens: “great show”",
                                            "url": "/dashboard", "tag": "tips"}
    assert stored(phone.endpoint).last_sent_at is not None


def test_a_call_request_pushes_to_the_creator_urgently_with_the_call_page(app, ctx, make_creator, make_fan, subscribe,
                                                                            receiver, queue, run_jobs):
    creator = make_creator()
    fan = make_fan(balance=1000, name="Caller Cleo")
    calls.update_settings(creator, 60, True)
    laptop = subscribe(creator, "creator-laptop", ["calls"])
    fan_id = fan.id
    try:
        call_id = calls.init_call(fan, creator.id, 60).id
        run_jobs()
    finally:
        close_open_calls([fan_id])
    (received,) = receiver.to("creator-laptop")
    assert_signed_for(app, receiver, received)
    assert received.headers["urgency"] == "high" and received.headers["ttl"] == "120"
    assert laptop.decrypt(received.body) == {
        "title": "Video call request", "body": "Caller Cleo wants a video call at 60 tokens per minute.",
        "url": f"/calls/{call_id}", "tag": f"call-{call_id}"}


def test_push_to_users_live_reaches_every_device_with_live_on_and_no_other(app, ctx, make_creator, make_fan,
                                                                           subscribe, receiver, run_jobs):
    fan1, fan2, creator = make_fan(), make_fan(), make_creator()
    fan1_id, creator_id = fan1.id, creator.id
    phone = subscribe(fan1, "fan1-phone", ["live"])
    tablet = subscribe(fan1, "fan1-tablet", ["live"])
    other = subscribe(fan2, "fan2-phone", ["live"])
    tips_only = subscribe(creator, "creator-tips", ["tips"])
    assert push_to_users([fan1_id, creator_id], "live", "Ana is live", "Come and watch", "/streams/7",
                         tag="live-7") is True
    run_jobs()
    for device in (phone, tablet):
        (received,) = receiver.to(device.endpoint.rsplit("/", 1)[1])
        assert_signed_for(app, receiver, received)
        assert received.headers["ttl"] == "3600"
        assert device.decrypt(received.body) == {"title": "Ana is live", "body": "Come and watch",
                                                 "url": "/streams/7", "tag": "live-7"}
    assert receiver.to("fan2-phone") == [] and receiver.to("creator-tips") == []
    assert stored(other.endpoint) and stored(tips_only.endpoint)


def test_a_topic_not_turned_on_sends_nothing_and_queues_no_job(ctx, make_creator, make_fan, subscribe, receiver,
                                                                queue, run_jobs):
    creator = make_creator()
    fan = make_fan(balance=500)
    subscribe(creator, "calls-only", ["calls"])
    tips.send_tip(fan, creator.id, 10, "", None, str(uuid.uuid4()))
    assert push_to_users([fan.id], "live", "t", "b", "/") is False  # no device at all
    assert [job.func_name for job in queue.jobs] == ["app.wallet.jobs.push_earnings"]  # no push job
    run_jobs()
    assert receiver.received == []


def test_404_and_410_delete_the_subscription_500_and_unreachable_keep_it_and_nothing_raises(
        ctx, make_fan, subscribe, receiver, run_jobs, caplog, monkeypatch):
    # Alembic's fileConfig in the session's migration disabled the app's existing loggers.
    monkeypatch.setattr(logging.getLogger("app.push.jobs"), "disabled", False)
    fans = {name: make_fan() for name in ("gone404", "gone410", "broken500", "ok")}
    devices = {name: subscribe(fan, name, ["live"]) for name, fan in fans.items()}
    receiver.answer("gone404", 404)
    receiver.answer("gone410", 410)
    receiver.answer("broken500", 500)
    result = send_push([f.id for f in fans.values()], "live", {"title": "t", "body": "b", "url": "/", "tag": "live"})
    assert result == {"sent": 1, "gone": 2, "failed": 1}
    assert stored(devices["gone404"].endpoint) is None and stored(devices["gone410"].endpoint) is None
    assert stored(devices["broken500"].endpoint).last_sent_at is None
    assert stored(devices["ok"].endpoint).last_sent_at is not None
    assert "answered 500" in caplog.text
    # A push service that cannot be reached: logged, kept, no exception.
    unreachable = make_fan()
    device = subscribe(unreachable, "unreachable", ["live"])
    db.session.execute(PushSubscription.__table__.update().where(PushSubscription.endpoint == device.endpoint)
                       .values(endpoint="http://127.0.0.1:9/push/unreachable"))
    db.session.commit()
    assert send_push([unreachable.id], "live", {"title": "t", "body": "b", "url": "/", "tag": "x"}) == {
        "sent": 0, "gone": 0, "failed": 1}
    assert stored("http://127.0.0.1:9/push/unreachable") is not None


def test_push_to_users_never_raises_into_its_caller(ctx, make_fan, subscribe, monkeypatch):
    """Queueing fails (Redis down, a bug): the caller's action is done, so the push is only logged."""
    fan = make_fan()
    subscribe(fan, "fan-phone", ["live"])

    def broken(*args):
        raise RuntimeError("queue down")
    monkeypatch.setattr("app.jobs.enqueue", broken)
    assert push_to_users([fan.id], "live", "t", "b", "/") is False
    assert push_to_users([fan.id], "no-such-topic", "t", "b", "/") is False
    assert push_to_users(["not an id"], "live", "t", "b", "/") is False


def test_a_push_url_off_this_site_becomes_the_home_page_and_long_text_is_clipped(ctx, make_fan, subscribe, receiver,
                                                                                  run_jobs):
    fan = make_fan()
    device = subscribe(fan, "clip", ["live"])
    push_to_users([fan.id], "live", "T" * 500, "B" * 5000, "https://evil.example/x")
    run_jobs()
    (received,) = receiver.to("clip")
    payload = device.decrypt(received.body)
    assert payload["url"] == "/" and len(payload["title"]) == 100 and len(payload["body"]) == 300


def test_a_fan_out_to_many_users_is_split_into_jobs(ctx, make_fan, subscribe, queue, monkeypatch):
    monkeypatch.setattr("app.push.service.USERS_PER_JOB", 2)
    fan = make_fan()
    subscribe(fan, "many", ["live"])
    assert push_to_users([fan.id, *range(10**9, 10**9 + 4)], "live", "t", "b", "/") is True
    assert len(queue.job_ids) == 3


def test_going_live_pushes_to_each_follower_with_live_on_once(app, ctx, make_creator, make_fan, subscribe, receiver,
                                                              make_stream, run_jobs):
    """The went-live fan-out job (app.notifications) pushes "<Creator> is live" to the followers'
    devices with `live` on; running it again pushes nothing more; a non-follower gets nothing."""
    from app.follows.service import follow
    from app.notifications.service import announce_live

    creator = make_creator(name="Ana Live")
    follower, stranger = make_fan(), make_fan()
    follow(follower, creator.id)
    phone = subscribe(follower, "follower-phone", ["live"])
    subscribe(stranger, "stranger-phone", ["live"])
    stream = make_stream(creator=creator, title="Sunday set", live=True)  # queues announce_live
    stream_id = stream.id
    run_jobs()  # the fan-out job, then the push job it queued
    (received,) = receiver.to("follower-phone")
    assert_signed_for(app, receiver, received)
    assert phone.decrypt(received.body) == {"title": "Ana Live is live", "body": "Sunday set",
                                            "url": f"/streams/{stream_id}", "tag": f"live-{stream_id}"}
    assert receiver.to("stranger-phone") == []
    assert announce_live(stream_id) == 0
    run_jobs()
    assert len(receiver.to("follower-phone")) == 1


def test_a_device_subscribed_elsewhere_gets_tip_pushes_within_the_cache_bound(ctx, make_creator, make_fan, queue,
                                                                               monkeypatch):
    """A tip asks about its creator's devices at most once per TOPICS_CACHE_SECONDS per process
    (app/push/service.py): a device another process subscribed counts within that bound."""
    from app.push import service as push
    from tests.push.helpers import Device

    monkeypatch.setattr(push, "TOPICS_CACHE_SECONDS", 2.0)
    creator, fan = make_creator(), make_fan(balance=500)

    def tip_queues_a_push() -> bool:
        queue.empty()
        tips.send_tip(fan, creator.id, 10, "", None, str(uuid.uuid4()))
        return "app.push.jobs.send_push" in [job.func_name for job in queue.jobs]

    assert not tip_queues_a_push()  # no device: read and remembered
    # Another process subscribes the creator's phone (its cache is not ours to drop).
    device = Device("https://push.example.com/other-process")
    keys = device.subscription(["tips"])["keys"]
    db.session.add(PushSubscription(user_id=creator.id, endpoint=device.endpoint, p256dh=keys["p256dh"],
                                    auth=keys["auth"], topics=["tips"]))
    db.session.commit()
    assert not tip_queues_a_push()  # within the bound this process may not know yet
    time.sleep(2.1)
    assert tip_queues_a_push()


def test_a_device_subscribed_through_this_process_gets_the_next_tip_push(ctx, make_creator, make_fan, subscribe,
                                                                         receiver, queue):
    creator, fan = make_creator(), make_fan(balance=500)
    tips.send_tip(fan, creator.id, 10, "", None, str(uuid.uuid4()))  # no device yet: remembered
    subscribe(creator, "new-phone", ["tips"])
    queue.empty()
    tips.send_tip(fan, creator.id, 10, "", None, str(uuid.uuid4()))
    assert "app.push.jobs.send_push" in [job.func_name for job in queue.jobs]
