"""GET/POST/DELETE /api/me/push/subscriptions (app/push/api.py, app/push/service.py):
a browser's subscription, its topics, and the input it refuses (DESIGN.md §7, §13)."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.push import service
from app.push.models import PushSubscription
from tests.helpers import assert_error, log_in
from tests.push.helpers import Device, b64url

API = "/api/me/push/subscriptions"


def count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(PushSubscription))


def owner_of(endpoint: str) -> int | None:
    db.session.rollback()
    return db.session.scalar(select(PushSubscription.user_id).where(PushSubscription.endpoint == endpoint))


@pytest.fixture()
def creator_client(client, make_creator):
    creator = make_creator()
    client.csrf = log_in(client, creator)
    client.user_id = creator.id
    return client


def post(client, body):
    return client.post(API, json=body, headers={"X-CSRFToken": client.csrf})


def test_subscribe_is_201_a_repeat_updates_the_topics_with_200_and_get_lists_it(creator_client, receiver):
    device = Device(receiver.endpoint("a"))
    first = post(creator_client, device.subscription(["tips", "calls"]))
    assert first.status_code == 201
    assert first.get_json()["subscription"]["topics"] == ["tips", "calls"]
    again = post(creator_client, device.subscription(["live", "tips"]))
    assert again.status_code == 200 and again.get_json()["subscription"]["topics"] == ["tips", "live"]
    listed = creator_client.get(API).get_json()
    assert listed["topics"] == ["tips", "calls", "live"]
    assert listed["publicKey"] == creator_client.application.config["VAPID_PUBLIC_KEY"]
    assert [s["endpoint"] for s in listed["subscriptions"]] == [device.endpoint]


def test_delete_removes_only_the_users_own_subscription(creator_client, new_client, make_fan, receiver):
    device = Device(receiver.endpoint("mine"))
    post(creator_client, device.subscription(["tips"]))
    stranger = new_client()
    token = log_in(stranger, make_fan())
    refused = stranger.delete(API, json={"endpoint": device.endpoint}, headers={"X-CSRFToken": token})
    assert_error(refused, 404, "subscription_not_found")
    assert owner_of(device.endpoint) == creator_client.user_id
    deleted = creator_client.delete(API, json={"endpoint": device.endpoint}, headers={"X-CSRFToken": creator_client.csrf})
    assert deleted.status_code == 200 and deleted.get_json() == {"deleted": True}
    assert owner_of(device.endpoint) is None
    assert_error(creator_client.delete(API, json={"endpoint": device.endpoint},
                                       headers={"X-CSRFToken": creator_client.csrf}), 404)


def test_the_same_browser_subscribing_for_another_account_moves_to_that_account(creator_client, new_client, make_fan,
                                                                                receiver):
    """A browser belongs to whoever is logged in on it: the previous account stops getting its pushes."""
    device = Device(receiver.endpoint("shared"))
    post(creator_client, device.subscription(["tips"]))
    fan = make_fan()
    other = new_client()
    token = log_in(other, fan)
    moved = other.post(API, json=device.subscription(["live"]), headers={"X-CSRFToken": token})
    assert moved.status_code == 200 and moved.get_json()["subscription"]["topics"] == ["live"]
    assert owner_of(device.endpoint) == fan.id


def test_a_fan_may_turn_on_live_only(client, make_fan, receiver):
    before = count()
    token = log_in(client, make_fan())
    for topics in (["tips"], ["calls"], ["live", "tips"]):
        resp = client.post(API, json=Device(receiver.endpoint("f")).subscription(topics), headers={"X-CSRFToken": token})
        assert_error(resp, 422, field="topics")
    assert client.get(API).get_json()["topics"] == ["live"]
    assert count() == before


def test_anonymous_is_401_and_a_cookie_request_without_csrf_is_refused(client, make_fan, receiver):
    before = count()
    body = Device(receiver.endpoint("x")).subscription(["live"])
    assert_error(client.post(API, json=body), 401)
    assert_error(client.get(API), 401)
    log_in(client, make_fan())
    assert client.post(API, json=body).status_code == 400
    assert count() == before


def test_an_api_token_client_subscribes_without_csrf(client, make_fan, receiver):
    fan = make_fan()
    token = client.post("/api/auth/token", json={"email": fan.email, "password": fan.test_password}).get_json()["token"]
    resp = client.post(API, json=Device(receiver.endpoint("app")).subscription(["live"]),
                       headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201


def test_each_user_keeps_their_newest_devices_only(creator_client, receiver, monkeypatch):
    monkeypatch.setattr(service, "MAX_DEVICES_PER_USER", 2)
    for name in ("d1", "d2", "d3"):
        assert post(creator_client, Device(receiver.endpoint(name)).subscription(["tips"])).status_code == 201
    assert owner_of(receiver.endpoint("d1")) is None
    assert owner_of(receiver.endpoint("d3")) == creator_client.user_id


_GOOD = Device("https://push.example.com/x")
_POINT_OFF_CURVE = b64url(b"\x04" + b"\x01" * 64)
HOSTILE = [
    # endpoint
    ("endpoint", None), ("endpoint", ""), ("endpoint", 5), ("endpoint", ["https://a.b/c"]), ("endpoint", {"a": 1}),
    ("endpoint", "javascript:alert(1)"), ("endpoint", "data:text/html,hi"), ("endpoint", "ftp://push.example.com/x"),
    ("endpoint", "http://push.example.com/x"), ("endpoint", "http://10.0.0.1/x"), ("endpoint", "https://"),
    ("endpoint", "https://push.example.com/" + "x" * 1000), ("endpoint", "https://user:pw@push.example.com/x"),
    ("endpoint", "https://push.example.com/x y"), ("endpoint", "https://püsh.example.com/x"),
    ("endpoint", "https://push.example.com:99999/x"), ("endpoint", "http://["), ("endpoint", "https://a.b/\t"),
    ("endpoint", "/relative/path"),
    # keys
    ("keys", None), ("keys", "p256dh"), ("keys", []), ("keys", {}),
    ("keys", {"p256dh": _GOOD.p256dh}), ("keys", {"auth": _GOOD.auth}),
    ("keys", {"p256dh": "not base64!", "auth": _GOOD.auth}),
    ("keys", {"p256dh": b64url(b"\x04" + b"\x01" * 63), "auth": _GOOD.auth}),  # 64 bytes
    ("keys", {"p256dh": _POINT_OFF_CURVE, "auth": _GOOD.auth}),
    ("keys", {"p256dh": b64url(b"\x02" + b"\x01" * 64), "auth": _GOOD.auth}),  # not uncompressed
    ("keys", {"p256dh": _GOOD.p256dh, "auth": b64url(b"x" * 15)}),
    ("keys", {"p256dh": _GOOD.p256dh, "auth": b64url(b"x" * 17)}),
    ("keys", {"p256dh": _GOOD.p256dh, "auth": "A" * 10_000}),
    ("keys", {"p256dh": _GOOD.p256dh, "auth": 12345}),
    ("keys", {"p256dh": _GOOD.p256dh + "=" * 3, "auth": _GOOD.auth}),
    ("keys", {"p256dh": _GOOD.p256dh, "auth": "\uff21" * 22}),
    # topics
    ("topics", None), ("topics", []), ("topics", "tips"), ("topics", ["sports"]), ("topics", [1]),
    ("topics", [["tips"]]), ("topics", ["tips"] * 4), ("topics", {"tips": True}),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE)
def test_hostile_subscription_input_is_422_and_stores_nothing(creator_client, field, value):
    body = Device(f"https://push.example.com/{uuid.uuid4().hex}").subscription(["tips"])
    body["keys"] = _GOOD.subscription([])["keys"]
    body[field] = value
    before = count()
    resp = post(creator_client, body)
    assert_error(resp, 422, field=field if field != "keys" else None)
    assert count() == before


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "null", '{"endpoint": "https://a.b/\\u0000"}',
                                  '{"endpoint": "https://a.b/\\ud800"}'])
def test_a_body_that_is_not_a_clean_json_object_is_400(creator_client, body):
    resp = creator_client.post(API, data=body, content_type="application/json",
                               headers={"X-CSRFToken": creator_client.csrf})
    assert_error(resp, 400)
    delete = creator_client.delete(API, data=body, content_type="application/json",
                                   headers={"X-CSRFToken": creator_client.csrf})
    assert_error(delete, 400)


@pytest.mark.parametrize("endpoint", [None, 5, "", "x" * 1001, ["a"]])
def test_delete_with_a_bad_endpoint_is_422(creator_client, endpoint):
    resp = creator_client.delete(API, json={"endpoint": endpoint}, headers={"X-CSRFToken": creator_client.csrf})
    assert_error(resp, 422, field="endpoint")


def test_production_takes_only_https_push_services_on_public_names(make_app, make_creator):
    """The worker POSTs to the endpoint: in production it can't be pointed at loopback, an IP
    address, a single-label host or another port (the test stand-in's http://127.0.0.1 is
    allowed only outside production)."""
    private, public = "rxUovKSwafZv1ognHpo_1P99Y3vV9vmZuy2hgtlSTic", \
        "BMdKZAvMBOFPzOAe6TL9ej7KJ7fOlv3TNJqJVISuinb5FGO4c5WPSTwvSZ_L9T8_LXkpePAGVgmxnyjDIlRzjVk"
    production = make_app(APP_ENV="production", ALLOW_DEMO_PAYMENTS=True, VAPID_PRIVATE_KEY=private,
                          VAPID_PUBLIC_KEY=public, VAPID_SUBJECT="mailto:ops@example.com")
    creator = make_creator()
    with production.app_context():
        for endpoint in ("http://127.0.0.1:8080/push/x", "https://127.0.0.1/x", "https://localhost/x",
                         "https://[::1]/x", "https://10.1.2.3/x", "https://intranet/x",
                         "https://push.example.com:8443/x"):
            with pytest.raises(service.InvalidValue):
                service.subscribe(creator, endpoint, {"p256dh": _GOOD.p256dh, "auth": _GOOD.auth}, ["tips"])
        sub, created = service.subscribe(creator, "https://fcm.googleapis.com/fcm/send/abc",
                                         {"p256dh": _GOOD.p256dh, "auth": _GOOD.auth}, ["tips"])
        assert created and sub.user_id == creator.id
        db.session.remove()


def test_logging_out_everywhere_stops_pushes_to_every_device_of_the_account(creator_client, new_client, make_fan,
                                                                              receiver):
    """A lost phone: "Log out everywhere" also forgets the account's push subscriptions (no one else's)."""
    phone, laptop = Device(receiver.endpoint("lost-phone")), Device(receiver.endpoint("laptop"))
    post(creator_client, phone.subscription(["tips"]))
    post(creator_client, laptop.subscription(["calls"]))
    other = new_client()
    other_token = log_in(other, make_fan())
    neighbour = Device(receiver.endpoint("neighbour"))
    other.post(API, json=neighbour.subscription(["live"]), headers={"X-CSRFToken": other_token})
    resp = creator_client.post("/account/logout-everywhere", data={"csrf_token": creator_client.csrf})
    assert resp.status_code in (302, 303)
    assert owner_of(phone.endpoint) is None and owner_of(laptop.endpoint) is None
    assert owner_of(neighbour.endpoint) is not None
