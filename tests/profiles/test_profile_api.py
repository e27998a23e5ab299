"""POST /api/creator/profile {handle?, bio?} → {profile} (DESIGN.md §13): handles are
3–30 of [a-z0-9_] and unique (409 handle_taken), bios at most 500 characters and
stay text; bad input is 422 with its field, never a 500."""
from __future__ import annotations

import pytest

from app.extensions import db
from tests.helpers import assert_error, log_in


def post(client, headers, body):
    return client.post("/api/creator/profile", headers=headers, json=body)


def test_creators_get_a_handle_at_sign_up(make_creator):
    creator = make_creator(name="Ada Lovelace!")
    assert creator.handle == f"adalovelace_{creator.id}"


def test_a_fan_who_becomes_a_creator_gets_a_handle(make_fan):
    from app.auth.service import become_creator
    fan = make_fan()
    assert fan.handle is None
    assert become_creator(fan).handle


def test_change_handle_and_multi_line_bio(client, make_creator, api_headers):
    creator = make_creator()
    handle = f"ada_{creator.id}"
    resp = post(client, api_headers(creator), {"handle": handle, "bio": "Line one\r\nLine two"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    profile = resp.get_json()["profile"]
    assert profile == {"id": creator.id, "handle": handle, "displayName": creator.display_name,
                       "bio": "Line one\nLine two", "avatarVersion": None, "avatarUrl": None}


def test_a_field_left_out_stays_as_it_is(client, make_creator, api_headers):
    creator = make_creator()
    post(client, api_headers(creator), {"bio": "hello"})
    old_handle = creator.handle
    profile = post(client, api_headers(creator), {}).get_json()["profile"]
    assert (profile["handle"], profile["bio"]) == (old_handle, "hello")
    assert post(client, api_headers(creator), {"bio": ""}).get_json()["profile"]["bio"] == ""


def test_handle_is_lowercased_and_trimmed(client, make_creator, api_headers):
    creator = make_creator()
    resp = post(client, api_headers(creator), {"handle": f"  Ada_{creator.id} "})
    assert resp.get_json()["profile"]["handle"] == f"ada_{creator.id}"


def test_someone_elses_handle_is_409_handle_taken(client, make_creator, api_headers):
    first, second = make_creator(), make_creator()
    assert_error(post(client, api_headers(second), {"handle": first.handle}), 409, "handle_taken", field="handle")
    db.session.refresh(second)
    assert second.handle != first.handle


def test_keeping_ones_own_handle_is_fine(client, make_creator, api_headers):
    creator = make_creator()
    assert post(client, api_headers(creator), {"handle": creator.handle}).status_code == 200


@pytest.mark.parametrize("handle", [
    "ab", "a" * 31, "has space", "dash-ed", "dot.ted", "émile", "ａｂｃ", "<script>", "", 123, None, True,
    ["abc"], {"a": 1}, "abc\u200b", "١٢٣٤",
])
def test_malformed_handles_are_422_on_the_handle_field(client, make_creator, api_headers, handle):
    creator = make_creator()
    old = creator.handle
    assert_error(post(client, api_headers(creator), {"handle": handle}), 422, field="handle")
    db.session.refresh(creator)
    assert creator.handle == old


@pytest.mark.parametrize("bio", ["x" * 501, 5, ["a"], {"a": "b"}, "bell\x07", "esc\x1b[31m"])
def test_malformed_bios_are_422_on_the_bio_field(client, make_creator, api_headers, bio):
    creator = make_creator()
    assert_error(post(client, api_headers(creator), {"bio": bio}), 422, field="bio")


def test_a_bio_of_500_characters_with_line_breaks_is_fine(client, make_creator, api_headers):
    creator = make_creator()
    bio = ("é" * 99 + "\r\n") * 5  # 500 characters once each CRLF counts as one line break
    assert post(client, api_headers(creator), {"bio": bio}).status_code == 200


def test_nul_bytes_and_lone_surrogates_are_refused_before_anything(client, make_creator, api_headers):
    creator = make_creator()
    headers = {**api_headers(creator), "Content-Type": "application/json"}
    for raw in ('{"bio": "a\\u0000b"}', '{"handle": "ab\\ud800c"}'):
        assert_error(client.post("/api/creator/profile", headers=headers, data=raw), 400, "invalid_text")


def test_one_bad_field_changes_nothing(client, make_creator, api_headers):
    creator = make_creator()
    old = creator.handle
    assert_error(post(client, api_headers(creator), {"handle": f"new_{creator.id}", "bio": "x" * 600}), 422)
    db.session.refresh(creator)
    assert (creator.handle, creator.bio) == (old, "")


def test_not_json_is_400(client, make_creator, api_headers):
    creator = make_creator()
    assert_error(client.post("/api/creator/profile", headers=api_headers(creator), data="handle=x"), 400)
    assert_error(post(client, api_headers(creator), ["handle"]), 400)


def test_fans_get_403_and_anonymous_401(client, make_fan, api_headers):
    assert_error(post(client, api_headers(make_fan()), {"bio": "hi"}), 403, "not_a_creator")
    assert_error(post(client, {}, {"bio": "hi"}), 401)


def test_cookie_auth_needs_csrf(client, make_creator):
    creator = make_creator()
    csrf = log_in(client, creator)
    assert_error(post(client, {}, {"bio": "x"}), 400, "csrf_failed")
    assert post(client, {"X-CSRFToken": csrf}, {"bio": "x"}).status_code == 200
