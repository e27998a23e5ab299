"""GET /api/me/notifications and POST /api/me/notifications/read (DESIGN.md §13, §7):
one's own only, validated input, JSON errors, never a 500."""
import pytest

from tests.helpers import assert_error
from tests.notifications.conftest import notifications_of


def test_list_answers_the_contract_newest_first(client, api_headers, make_fan, notify):
    fan = make_fan()
    first, second = notify(fan, text="A <b>is live</b>: one", url="/streams/7"), notify(fan)
    resp = client.get("/api/me/notifications", headers=api_headers(fan))
    assert resp.status_code == 200
    items = resp.get_json()["notifications"]
    assert [n["id"] for n in items] == [second, first]
    assert set(items[1]) == {"id", "type", "text", "url", "createdAt", "readAt"}
    assert items[1]["text"] == "A <b>is live</b>: one" and items[1]["url"] == "/streams/7"
    assert items[1]["type"] == "live" and items[1]["readAt"] is None and items[1]["createdAt"]


def test_list_pages_with_before(client, api_headers, make_fan, notify):
    fan = make_fan()
    ids = [notify(fan) for _ in range(3)]
    resp = client.get(f"/api/me/notifications?before={ids[2]}&limit=1", headers=api_headers(fan))
    assert [n["id"] for n in resp.get_json()["notifications"]] == [ids[1]]


@pytest.mark.parametrize("query", ["before=abc", "before=0", "before=-3", "before=%D9%A3", "before=" + "9" * 30,
                                   "limit=0", "limit=500", "limit=ten", "before=1%002"])
def test_list_refuses_a_bad_cursor_or_limit(client, api_headers, make_fan, query):
    resp = client.get(f"/api/me/notifications?{query}", headers=api_headers(make_fan()))
    assert resp.status_code in (400, 422), resp.get_data(as_text=True)
    assert_error(resp, resp.status_code)


def test_list_needs_credentials(client):
    assert_error(client.get("/api/me/notifications"), 401, "unauthorized")


def test_list_never_shows_someone_elses(client, api_headers, make_fan, notify):
    fan, other = make_fan(), make_fan()
    notify(other)
    assert client.get("/api/me/notifications", headers=api_headers(fan)).get_json() == {"notifications": []}


def test_read_without_ids_marks_all_and_returns_unread(client, api_headers, make_fan, notify):
    fan = make_fan()
    notify(fan)
    notify(fan)
    for body in ({"json": {}}, {}):  # an empty object, or no body at all
        notify(fan)
        resp = client.post("/api/me/notifications/read", headers=api_headers(fan), **body)
        assert resp.status_code == 200 and resp.get_json() == {"unread": 0}
    assert all(n.read_at for n in notifications_of(fan.id))


def test_read_with_ids_changes_nothing_of_other_people(client, api_headers, make_fan, notify):
    fan, other = make_fan(), make_fan()
    mine, theirs = notify(fan), notify(other)
    keep = notify(fan)
    resp = client.post("/api/me/notifications/read", headers=api_headers(fan), json={"ids": [mine, theirs]})
    assert resp.get_json() == {"unread": 1}
    assert [n.id for n in notifications_of(fan.id) if n.read_at is None] == [keep]
    assert notifications_of(other.id)[0].read_at is None


@pytest.mark.parametrize("ids", ["all", 5, [1.5], ["1"], [True], [0], [-2], [2**63], [[1]], [None], {"1": 1},
                                 list(range(1, 502))])
def test_read_with_bad_ids_is_422_and_changes_nothing(client, api_headers, make_fan, notify, ids):
    fan = make_fan()
    notify(fan)
    assert_error(client.post("/api/me/notifications/read", headers=api_headers(fan), json={"ids": ids}),
                 422, "invalid_value", "ids")
    assert notifications_of(fan.id)[0].read_at is None


@pytest.mark.parametrize("raw", ["[]", "nul", '"ids"', "1", '{"ids": [1', "[" * 10_000])
def test_read_with_a_malformed_body_is_400(client, api_headers, make_fan, raw):
    resp = client.post("/api/me/notifications/read", headers={**api_headers(make_fan()),
                                                               "Content-Type": "application/json"}, data=raw)
    assert_error(resp, 400)


def test_read_with_hostile_text_is_refused_not_a_500(client, api_headers, make_fan):
    for raw in ('{"ids": ["\\u0000"]}', '{"ids": ["\\ud800"]}'):
        resp = client.post("/api/me/notifications/read", headers={**api_headers(make_fan()),
                                                                   "Content-Type": "application/json"},
                           data=raw)
        assert resp.status_code in (400, 422)
        assert_error(resp, resp.status_code)


def test_read_with_a_session_needs_csrf(client, login, make_fan, notify):
    fan = make_fan()
    notify(fan)
    token = login(fan)
    assert_error(client.post("/api/me/notifications/read", json={}), 400, "csrf_failed")
    assert notifications_of(fan.id)[0].read_at is None
    resp = client.post("/api/me/notifications/read", json={}, headers={"X-CSRFToken": token})
    assert resp.get_json() == {"unread": 0}
