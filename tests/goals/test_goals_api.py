"""The tip goal's JSON API (DESIGN.md §12 "Tip goal"): who may set, read and clear it,
the statuses and codes, bad input, and progress read from the tips.

Real PostgreSQL and Redis; jobs run by a real RQ worker (`run_jobs`)."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.extensions import db
from app.goals import service as goals
from app.streams import service as streams
from app.tips import service as tips
from tests.helpers import assert_error

BAD_TITLES = [None, "", "   ", 5, True, ["x"], {"a": 1}, "x" * 81, "line\nbreak", "tab\there", "bell\x07",
              "bidi \u202e reversed", "sep\u2028line"]
BAD_TARGETS = [None, "", "100", 0, -1, 1.5, 10.0, True, False, 10_000_001, 2**63, 2**70, "١٠٠", "１００", [100],
               {"n": 1}]


@pytest.fixture()
def room(make_fan, make_creator, make_stream, api_headers, run_jobs):
    """A creator with a live public stream, a funded fan, their bearer headers; the room's
    refresh that going live queued has run."""
    creator, fan = make_creator(), make_fan(balance=10_000)
    stream = make_stream(creator, live=True)
    run_jobs()
    return creator, fan, stream, api_headers(creator), api_headers(fan)


def tip(fan, creator, stream, amount):
    return tips.send_tip(fan, creator.id, amount, "", {"streamId": stream.id}, str(uuid.uuid4()))


def set_goal(client, headers, stream_id, body):
    return client.post(f"/api/streams/{stream_id}/goal", json=body, headers=headers)


def test_creator_sets_a_goal_and_viewers_read_it(client, room):
    creator, fan, stream, ch, fh = room
    resp = set_goal(client, ch, stream.id, {"title": "New outfit", "targetTokens": 500})
    assert resp.status_code == 200, resp.get_json()
    goal = resp.get_json()["goal"]
    assert goal == {"id": goal["id"], "title": "New outfit", "targetTokens": 500, "progressTokens": 0,
                    "reachedAt": None}
    assert client.get(f"/api/streams/{stream.id}/goal", headers=fh).get_json() == {"goal": goal}
    # Anonymous viewers of a public stream may read it too.
    assert client.get(f"/api/streams/{stream.id}/goal").get_json() == {"goal": goal}


def test_no_goal_reads_null(client, room):
    _, _, stream, _, fh = room
    resp = client.get(f"/api/streams/{stream.id}/goal", headers=fh)
    assert resp.status_code == 200 and resp.get_json() == {"goal": None}


def test_progress_counts_only_tips_to_the_stream_after_the_goal(client, room, make_stream):
    creator, fan, stream, ch, fh = room
    tip(fan, creator, stream, 70)  # before the goal: not counted
    set_goal(client, ch, stream.id, {"title": "Dance", "targetTokens": 1000})
    tip(fan, creator, stream, 30)
    tip(fan, creator, stream, 12)
    tips.send_tip(fan, creator.id, 500, "", None, str(uuid.uuid4()))  # no stream: not counted
    other = make_stream(creator, live=True)
    tip(fan, creator, other, 400)  # another stream of the same creator: not counted
    goal = client.get(f"/api/streams/{stream.id}/goal", headers=fh).get_json()["goal"]
    assert goal["progressTokens"] == 42


def test_a_new_goal_replaces_the_current_one_and_starts_from_zero(client, room):
    creator, fan, stream, ch, fh = room
    first = set_goal(client, ch, stream.id, {"title": "One", "targetTokens": 100}).get_json()["goal"]
    tip(fan, creator, stream, 40)
    second = set_goal(client, ch, stream.id, {"title": "Two", "targetTokens": 200}).get_json()["goal"]
    assert second["id"] != first["id"] and second["progressTokens"] == 0
    tip(fan, creator, stream, 5)
    assert client.get(f"/api/streams/{stream.id}/goal", headers=fh).get_json()["goal"]["progressTokens"] == 5
    current = db.session.scalar(text("SELECT count(*) FROM stream_goals WHERE stream_id = :s AND replaced_at IS NULL"),
                                {"s": stream.id})
    assert current == 1


def test_delete_clears_the_goal(client, room):
    _, _, stream, ch, fh = room
    set_goal(client, ch, stream.id, {"title": "One", "targetTokens": 100})
    resp = client.delete(f"/api/streams/{stream.id}/goal", headers=ch)
    assert resp.status_code == 200 and resp.get_json() == {"goal": None}
    assert client.get(f"/api/streams/{stream.id}/goal", headers=fh).get_json() == {"goal": None}
    # Clearing again is harmless.
    assert client.delete(f"/api/streams/{stream.id}/goal", headers=ch).status_code == 200


def test_a_scheduled_stream_takes_a_goal(client, make_creator, make_stream, api_headers):
    creator = make_creator()
    stream = make_stream(creator)
    assert set_goal(client, api_headers(creator), stream.id, {"title": "Soon", "targetTokens": 9}).status_code == 200


@pytest.mark.parametrize("action", ["end", "cancel"])
def test_a_stream_that_is_over_refuses_a_goal_with_409(client, make_creator, make_stream, api_headers, action):
    creator = make_creator()
    stream = make_stream(creator, live=True)
    headers = api_headers(creator)
    set_goal(client, headers, stream.id, {"title": "Before", "targetTokens": 9})
    streams.change_status(creator, stream.id, action)
    assert_error(set_goal(client, headers, stream.id, {"title": "After", "targetTokens": 9}), 409, "stream_not_live")
    assert_error(client.delete(f"/api/streams/{stream.id}/goal", headers=headers), 409, "stream_not_live")


def test_only_the_streams_creator_sets_or_clears_its_goal(client, room, make_creator, api_headers):
    _, _, stream, _, fh = room
    other = api_headers(make_creator())
    for headers in (fh, other):
        assert_error(set_goal(client, headers, stream.id, {"title": "Mine", "targetTokens": 9}), 403,
                     "not_stream_owner")
        assert_error(client.delete(f"/api/streams/{stream.id}/goal", headers=headers), 403, "not_stream_owner")
    assert goals.current_goal(stream.id) is None


def test_unknown_stream_is_404(client, room):
    _, _, _, ch, _ = room
    assert_error(set_goal(client, ch, 999_999_999, {"title": "x", "targetTokens": 9}), 404, "stream_not_found")
    assert_error(client.get("/api/streams/999999999/goal", headers=ch), 404, "stream_not_found")
    assert_error(client.delete("/api/streams/999999999/goal", headers=ch), 404, "stream_not_found")


def test_private_stream_goal_is_for_ticket_holders(client, make_creator, make_fan, make_stream, api_headers):
    creator = make_creator()
    stream = make_stream(creator, type_="private", ticket_price=10, live=True)
    set_goal(client, api_headers(creator), stream.id, {"title": "Secret", "targetTokens": 9})
    assert_error(client.get(f"/api/streams/{stream.id}/goal", headers=api_headers(make_fan())), 403, "no_access")
    assert_error(client.get(f"/api/streams/{stream.id}/goal"), 403, "no_access")
    holder = make_fan(balance=100)
    from app.streams import tickets
    tickets.checkout(holder, stream)
    assert client.get(f"/api/streams/{stream.id}/goal", headers=api_headers(holder)).get_json()["goal"]["title"] == "Secret"


def test_setting_needs_credentials(client, room):
    _, _, stream, _, _ = room
    assert_error(client.post(f"/api/streams/{stream.id}/goal", json={"title": "x", "targetTokens": 1}), 401)
    assert_error(client.delete(f"/api/streams/{stream.id}/goal"), 401)


@pytest.mark.parametrize("title", BAD_TITLES)
def test_bad_titles_are_422_on_title(client, room, title):
    _, _, stream, ch, _ = room
    assert_error(set_goal(client, ch, stream.id, {"title": title, "targetTokens": 10}), 422, "invalid_value", "title")
    assert goals.current_goal(stream.id) is None


@pytest.mark.parametrize("target", BAD_TARGETS)
def test_bad_targets_are_422_on_target(client, room, target):
    _, _, stream, ch, _ = room
    assert_error(set_goal(client, ch, stream.id, {"title": "Fine", "targetTokens": target}), 422, "invalid_value",
                 "targetTokens")
    assert goals.current_goal(stream.id) is None


def test_target_bounds_are_1_and_10_million(client, room):
    _, _, stream, ch, _ = room
    assert set_goal(client, ch, stream.id, {"title": "Low", "targetTokens": 1}).status_code == 200
    resp = set_goal(client, ch, stream.id, {"title": "High", "targetTokens": 10_000_000})
    assert resp.status_code == 200 and resp.get_json()["goal"]["targetTokens"] == 10_000_000


@pytest.mark.parametrize("body", [None, "[]", "not json", "[1, 2]"])
def test_a_body_that_is_no_json_object_is_400(client, room, body):
    _, _, stream, ch, _ = room
    resp = client.post(f"/api/streams/{stream.id}/goal", data=body, headers={**ch, "Content-Type": "application/json"})
    assert_error(resp, 400)


def test_hostile_titles_are_stored_raw_and_returned_as_text(client, room):
    _, _, stream, ch, fh = room
    hostile = "<script>alert(1)</script> & \"quotes\" 🎉 ünïcode"[:80]
    goal = set_goal(client, ch, stream.id, {"title": f"  {hostile}  ", "targetTokens": 5}).get_json()["goal"]
    assert goal["title"] == hostile
    page = client.get(f"/streams/{stream.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_reached_at_is_set_by_the_room_job_once(client, room, run_jobs, queue):
    creator, fan, stream, ch, fh = room
    set_goal(client, ch, stream.id, {"title": "Cake", "targetTokens": 50})
    tip(fan, creator, stream, 30)
    run_jobs()
    assert client.get(f"/api/streams/{stream.id}/goal", headers=fh).get_json()["goal"]["reachedAt"] is None
    tip(fan, creator, stream, 25)
    run_jobs()
    goal = client.get(f"/api/streams/{stream.id}/goal", headers=fh).get_json()["goal"]
    assert goal["progressTokens"] == 55 and goal["reachedAt"] is not None
    first = goal["reachedAt"]
    tip(fan, creator, stream, 5)
    run_jobs()
    assert client.get(f"/api/streams/{stream.id}/goal", headers=fh).get_json()["goal"]["reachedAt"] == first
