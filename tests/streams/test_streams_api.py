"""/api/streams/* (DESIGN.md §5 Streams & tickets, §7 JSON API)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.helpers import assert_error, run_together

# ---- helpers ----------------------------------------------------------------

def create(client, headers, body):
    return client.post("/api/streams/create", json=body, headers=headers)


def streams_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM streams WHERE creator_id = :u"), {"u": user_id})


def status_of(stream_id: int) -> str:
    return db.session.scalar(text("SELECT status FROM streams WHERE id = :i"), {"i": stream_id})




@pytest.fixture()
def creator_api(make_creator, api_headers):
    creator = make_creator()
    return creator, api_headers(creator)


@pytest.fixture()
def a_stream(creator_api, make_stream):
    """(creator, creator headers, id of a scheduled public stream)."""
    creator, headers = creator_api
    return creator, headers, make_stream(creator, title="Scheduled show").id


# ---- create -----------------------------------------------------------------------

def test_creator_creates_a_public_stream_201_scheduled(client, creator_api):
    creator, headers = creator_api
    resp = create(client, headers, {"type": "public", "title": "Morning yoga"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    stream = resp.get_json()["stream"]
    assert {"id", "channel", "type", "ticketPrice", "status"} <= set(stream)
    assert isinstance(stream["id"], int)
    assert stream["type"] == "public" and stream["ticketPrice"] is None and stream["status"] == "scheduled"
    assert stream["title"] == "Morning yoga" and stream["creatorId"] == creator.id
    assert isinstance(stream["channel"], str) and len(stream["channel"]) >= 12
    assert client.get(f"/api/streams/{stream['id']}").get_json()["stream"] == stream


def test_channels_are_unique_and_unguessable(client, creator_api):
    _, headers = creator_api
    channels = {create(client, headers, {"type": "public"}).get_json()["stream"]["channel"] for _ in range(5)}
    assert len(channels) == 5


def test_a_stream_without_a_title_gets_a_default_one(client, creator_api):
    creator, headers = creator_api
    resp = create(client, headers, {"type": "public"})
    assert resp.status_code == 201
    assert resp.get_json()["stream"]["title"] == f"{creator.display_name} live"


@pytest.mark.parametrize("price", [1, 1_000_000])
def test_private_stream_with_a_price_from_1_to_1000000_is_201(client, creator_api, price):
    _, headers = creator_api
    resp = create(client, headers, {"type": "private", "title": "VIP", "ticketPrice": price})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    stream = resp.get_json()["stream"]
    assert stream["type"] == "private" and stream["ticketPrice"] == price and stream["status"] == "scheduled"


@pytest.mark.parametrize("starts_at,expected", [
    ("2030-12-01T20:00:00Z", "2030-12-01T20:00:00+00:00"),
    ("2030-12-01T20:00:00+02:00", "2030-12-01T18:00:00+00:00"),
    ("2030-12-01T20:00", "2030-12-01T20:00:00+00:00"),  # no zone: UTC, as the form says
])
def test_starts_at_is_an_iso_date_time(client, creator_api, starts_at, expected):
    from datetime import datetime
    _, headers = creator_api
    resp = create(client, headers, {"type": "public", "startsAt": starts_at})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert datetime.fromisoformat(resp.get_json()["stream"]["startsAt"]) == datetime.fromisoformat(expected)


def test_a_fan_cannot_create_a_stream_403(client, make_fan, api_headers):
    fan = make_fan()
    assert_error(create(client, api_headers(fan), {"type": "public", "title": "Mine"}), 403, "not_a_creator")
    assert streams_of(fan.id) == 0


def test_anonymous_create_is_401(client):
    assert_error(client.post("/api/streams/create", json={"type": "public"}), 401)


@pytest.mark.parametrize("body,field", [
    ({"type": "secret"}, "type"),
    ({"type": "PUBLIC"}, "type"),
    ({"type": ""}, "type"),
    ({"type": None}, "type"),
    ({}, "type"),
    ({"type": ["public"]}, "type"),
    ({"type": "public", "title": "t" * 121}, "title"),
    ({"type": "public", "title": 42}, "title"),
    ({"type": "public", "title": "line\nbreak"}, "title"),
    ({"type": "private"}, "ticketPrice"),
    ({"type": "private", "ticketPrice": None}, "ticketPrice"),
    ({"type": "private", "ticketPrice": 0}, "ticketPrice"),
    ({"type": "private", "ticketPrice": -1}, "ticketPrice"),
    ({"type": "private", "ticketPrice": 1.5}, "ticketPrice"),
    ({"type": "private", "ticketPrice": 100.0}, "ticketPrice"),
    ({"type": "private", "ticketPrice": "100"}, "ticketPrice"),
    ({"type": "private", "ticketPrice": True}, "ticketPrice"),
    ({"type": "private", "ticketPrice": 1_000_001}, "ticketPrice"),
    ({"type": "public", "ticketPrice": 100}, "ticketPrice"),
    ({"type": "public", "ticketPrice": 0}, "ticketPrice"),
    ({"type": "public", "startsAt": "tomorrow"}, "startsAt"),
    ({"type": "public", "startsAt": "2030-13-01T20:00:00Z"}, "startsAt"),
    ({"type": "public", "startsAt": 1893456000}, "startsAt"),
    ({"type": "public", "startsAt": "2" * 41}, "startsAt"),
    ({"type": "public", "startsAt": "9999-12-31T23:59:59-01:00"}, "startsAt"),
    ({"type": "public", "startsAt": "0001-01-01T00:00:00+01:00"}, "startsAt"),
], ids=lambda v: repr(v)[:40] if isinstance(v, dict) else v)
def test_bad_field_is_422_naming_it_and_creates_nothing(client, creator_api, body, field):
    creator, headers = creator_api
    resp = create(client, headers, body)
    err = assert_error(resp, 422, "invalid_value", field)
    assert field in err["errors"]
    assert streams_of(creator.id) == 0


def test_all_bad_fields_are_listed_at_once(client, creator_api):
    creator, headers = creator_api
    err = assert_error(create(client, headers, {"type": "private", "title": "t" * 121, "ticketPrice": 0,
                                                "startsAt": "soon"}), 422)
    assert set(err["errors"]) == {"title", "ticketPrice", "startsAt"}
    assert streams_of(creator.id) == 0


@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["nul", "lone-surrogate"])
def test_a_title_with_a_nul_byte_or_lone_surrogate_is_400_invalid_text_and_creates_nothing(client, creator_api, bad):
    """Once a 500 (UnicodeEncodeError / psycopg.DataError on the INSERT)."""
    creator, headers = creator_api
    assert_error(create(client, headers, {"type": "public", "title": f"Morning {bad} yoga"}), 400, "invalid_text")
    assert streams_of(creator.id) == 0


@pytest.mark.parametrize("data", ["[]", '"public"', "nope", ""])
def test_non_object_body_is_400(client, creator_api, data):
    creator, headers = creator_api
    resp = client.post("/api/streams/create", data=data, content_type="application/json", headers=headers)
    assert_error(resp, 400)
    assert streams_of(creator.id) == 0


# ---- read & access -------------------------------------------------------------------

def test_get_stream_is_public(client, new_client, a_stream):
    _, _, stream_id = a_stream
    resp = new_client().get(f"/api/streams/{stream_id}")
    assert resp.status_code == 200
    body = resp.get_json()["stream"]
    assert body["id"] == stream_id and body["status"] == "scheduled" and body["type"] == "public"


@pytest.mark.parametrize("path", ["/api/streams/{missing}", "/api/streams/99999999999999999999",
                                  "/api/streams/0", "/api/streams/{missing}/access"])
def test_unknown_or_huge_stream_id_is_404(client, creator_api, path):
    _, headers = creator_api
    missing = db.session.scalar(text("SELECT coalesce(max(id), 0) + 1000 FROM streams"))
    assert_error(client.get(path.format(missing=missing), headers=headers), 404)


ARABIC_INDIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
FULLWIDTH = str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")


@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULLWIDTH], ids=["arabic-indic", "fullwidth"])
@pytest.mark.parametrize("path", ["/api/streams/{id}", "/api/streams/{id}/access", "/streams/{id}"])
def test_a_stream_id_in_non_ascii_digits_names_no_stream(client, a_stream, digits, path):
    """werkzeug's `<int:>` matched "٣" as 3: only ASCII digits are an id in a URL."""
    _, headers, stream_id = a_stream
    assert client.get(path.format(id=stream_id), headers=headers).status_code == 200
    resp = client.get(path.format(id=str(stream_id).translate(digits)), headers=headers)
    assert resp.status_code == 404, resp.get_data(as_text=True)[:300]


def test_access_creator_always_fan_public_yes_private_no(client, creator_api, make_fan, make_creator,
                                                       api_headers, make_stream):
    creator, headers = creator_api
    public = make_stream(creator, title="Open")
    private = make_stream(creator, "private", title="Closed", ticket_price=500)
    fan_headers = api_headers(make_fan())
    other_creator_headers = api_headers(make_creator())

    def access(h, sid):
        resp = client.get(f"/api/streams/{sid}/access", headers=h)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()["hasAccess"]

    assert access(headers, public.id) is True
    assert access(headers, private.id) is True
    assert access(fan_headers, public.id) is True
    assert access(fan_headers, private.id) is False
    assert access(other_creator_headers, private.id) is False


def test_private_stream_channel_is_not_revealed_to_those_without_access(client, new_client, creator_api,
                                                                        make_fan, api_headers, make_stream):
    """The channel name gates the private show's socket; only those with access learn it."""
    creator, headers = creator_api
    private = make_stream(creator, "private", title="Closed", ticket_price=500)
    assert client.get(f"/api/streams/{private.id}", headers=headers).get_json()["stream"]["channel"] == \
        private.channel
    for resp in (new_client().get(f"/api/streams/{private.id}"),
                 client.get(f"/api/streams/{private.id}", headers=api_headers(make_fan()))):
        assert resp.status_code == 200
        body = resp.get_json()["stream"]
        assert body["id"] == private.id and body["type"] == "private" and body["ticketPrice"] == 500
        assert body["channel"] is None
        assert private.channel not in resp.get_data(as_text=True)


# ---- status machine -------------------------------------------------------------------------

def test_owner_starts_then_ends_a_stream(client, a_stream):
    _, headers, stream_id = a_stream
    resp = client.post(f"/api/streams/{stream_id}/start", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["stream"]["status"] == "live"
    resp = client.post(f"/api/streams/{stream_id}/end", headers=headers)
    assert resp.status_code == 200 and resp.get_json()["stream"]["status"] == "ended"
    assert status_of(stream_id) == "ended"
    started, ended = db.session.execute(text("SELECT started_at, ended_at FROM streams WHERE id = :i"),
                                        {"i": stream_id}).one()
    assert started is not None and ended is not None and ended >= started


@pytest.mark.parametrize("first", [None, "start"])
def test_owner_cancels_a_scheduled_or_live_stream(client, a_stream, first):
    _, headers, stream_id = a_stream
    if first:
        assert client.post(f"/api/streams/{stream_id}/{first}", headers=headers).status_code == 200
    resp = client.post(f"/api/streams/{stream_id}/cancel", headers=headers)
    assert resp.status_code == 200 and resp.get_json()["stream"]["status"] == "canceled"


@pytest.mark.parametrize("action", ["start", "end", "cancel"])
def test_only_the_owner_changes_status_others_403(client, a_stream, make_fan, make_creator, api_headers, action):
    _, headers, stream_id = a_stream
    if action == "end":
        client.post(f"/api/streams/{stream_id}/start", headers=headers)
    before = status_of(stream_id)
    for other in (make_fan(), make_creator()):
        assert_error(client.post(f"/api/streams/{stream_id}/{action}", headers=api_headers(other)),
                     403, "not_stream_owner")
    assert status_of(stream_id) == before


@pytest.mark.parametrize("action", ["start", "end", "cancel"])
def test_anonymous_status_change_is_401(client, a_stream, action):
    _, _, stream_id = a_stream
    assert_error(client.post(f"/api/streams/{stream_id}/{action}"), 401)
    assert status_of(stream_id) == "scheduled"


@pytest.mark.parametrize("history,action", [
    ([], "end"),
    (["start", "end"], "start"),
    (["start", "end"], "cancel"),
    (["start", "end"], "end"),
    (["start"], "start"),
    (["cancel"], "start"),
    (["cancel"], "cancel"),
    (["cancel"], "end"),
])
def test_illegal_transitions_are_409_and_change_nothing(client, a_stream, history, action):
    _, headers, stream_id = a_stream
    for step in history:
        assert client.post(f"/api/streams/{stream_id}/{step}", headers=headers).status_code == 200
    before = status_of(stream_id)
    assert_error(client.post(f"/api/streams/{stream_id}/{action}", headers=headers), 409, "invalid_stream_status")
    assert status_of(stream_id) == before


def test_status_change_of_an_unknown_stream_is_404(client, creator_api):
    _, headers = creator_api
    assert_error(client.post("/api/streams/99999999999999999999/start", headers=headers), 404)
    assert_error(client.post(f"/api/streams/{2 ** 62}/start", headers=headers), 404)


def test_unknown_action_is_404_or_405(client, a_stream):
    _, headers, stream_id = a_stream
    assert client.post(f"/api/streams/{stream_id}/explode", headers=headers).status_code in (404, 405)
    assert status_of(stream_id) == "scheduled"


# ---- concurrency ------------------------------------------------------------------------------

def test_10_threads_starting_the_same_stream_exactly_one_wins(app, a_stream):
    """The row lock serialises the transition: one 200, nine 409."""
    _, headers, stream_id = a_stream

    def call(i):
        resp = app.test_client().post(f"/api/streams/{stream_id}/start", headers=headers)
        return resp.status_code

    results = run_together(app, 10, call)
    assert sorted(results) == [200] + [409] * 9, results
    assert status_of(stream_id) == "live"


def test_concurrent_end_and_cancel_of_a_live_stream_one_wins(app, a_stream):
    _, headers, stream_id = a_stream
    assert app.test_client().post(f"/api/streams/{stream_id}/start", headers=headers).status_code == 200
    actions = ["end", "cancel"] * 5

    def call(i):
        return actions[i], app.test_client().post(f"/api/streams/{stream_id}/{actions[i]}",
                                                  headers=headers).status_code

    results = run_together(app, 10, call)
    winners = [a for a, status in results if status == 200]
    assert len(winners) == 1 and sum(1 for _, s in results if s == 409) == 9, results
    assert status_of(stream_id) == {"end": "ended", "cancel": "canceled"}[winners[0]]

