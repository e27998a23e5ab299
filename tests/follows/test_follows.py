"""Follow / unfollow (DESIGN.md §13): POST and DELETE /api/creators/<id>/follow →
{following, followers}, and the Follow button's HTML route, both on follows.service."""
from __future__ import annotations

import pytest

from app.follows import service
from tests.helpers import assert_error, log_in, visible

HTMX = {"HX-Request": "true"}


def api(client, method, creator_id, headers):
    return client.open(f"/api/creators/{creator_id}/follow", method=method, headers=headers)


def test_follow_then_unfollow_answers_state_and_count(client, make_creator, make_fan, api_headers):
    creator, fan, other = make_creator(), make_fan(), make_fan()
    service.follow(other, creator.id)
    h = api_headers(fan)
    assert api(client, "POST", creator.id, h).get_json() == {"following": True, "followers": 2}
    assert api(client, "DELETE", creator.id, h).get_json() == {"following": False, "followers": 1}


def test_following_twice_and_unfollowing_twice_change_nothing(client, make_creator, make_fan, api_headers):
    creator, fan = make_creator(), make_fan()
    h = api_headers(fan)
    api(client, "POST", creator.id, h)
    assert api(client, "POST", creator.id, h).get_json() == {"following": True, "followers": 1}
    api(client, "DELETE", creator.id, h)
    assert api(client, "DELETE", creator.id, h).get_json() == {"following": False, "followers": 0}


def test_a_creator_may_follow_another_creator_but_not_themselves(client, make_creator, api_headers):
    one, two = make_creator(), make_creator()
    assert api(client, "POST", two.id, api_headers(one)).status_code == 200
    assert_error(api(client, "POST", one.id, api_headers(one)), 409, "cannot_follow_self")


@pytest.mark.parametrize("target", ["unknown", "fan"])
def test_unknown_ids_and_fans_are_404(client, make_fan, api_headers, target):
    fan = make_fan()
    creator_id = 999_999_999_999 if target == "unknown" else make_fan().id
    assert_error(api(client, "POST", creator_id, api_headers(fan)), 404, "creator_not_found")
    assert_error(api(client, "DELETE", creator_id, api_headers(fan)), 404, "creator_not_found")


def test_ids_that_are_not_ids_are_404(client, make_fan, api_headers):
    h = api_headers(make_fan())
    for bad in ("abc", "-1", "1.5", "٣", "99999999999999999999999"):
        assert client.post(f"/api/creators/{bad}/follow", headers=h).status_code == 404, bad


def test_anonymous_is_401_and_cookie_auth_needs_csrf(client, make_creator, make_fan):
    creator, fan = make_creator(), make_fan()
    assert_error(api(client, "POST", creator.id, {}), 401)
    csrf = log_in(client, fan)
    assert_error(api(client, "POST", creator.id, {}), 400, "csrf_failed")
    assert service.follower_count(creator.id) == 0
    assert api(client, "POST", creator.id, {"X-CSRFToken": csrf}).get_json()["following"] is True


# ---- the button ------------------------------------------------------------------------

def test_button_flips_and_its_count_moves(client, make_creator, make_fan):
    creator, fan = make_creator(), make_fan()
    csrf = log_in(client, fan)
    resp = client.post(f"/creators/{creator.id}/follow", headers={**HTMX, "X-CSRFToken": csrf})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and html.lstrip().startswith(f'<div class="follow" id="follow-{creator.id}"')
    assert "Following" in visible(html) and "1 follower" in visible(html)
    assert f'hx-post="/creators/{creator.id}/unfollow"' in html and 'hx-indicator="this"' in html
    html = client.post(f"/creators/{creator.id}/unfollow", headers={**HTMX, "X-CSRFToken": csrf}).get_data(as_text=True)
    assert "Follow" in visible(html) and "Following" not in visible(html) and "0 followers" in visible(html)


def test_button_without_htmx_goes_back_to_the_page(client, make_creator, make_fan):
    creator, fan = make_creator(), make_fan()
    csrf = log_in(client, fan)
    resp = client.post(f"/creators/{creator.id}/follow", data={"csrf_token": csrf, "next": "/streams/1"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/streams/1")
    assert service.is_following(fan.id, creator.id)
    resp = client.post(f"/creators/{creator.id}/unfollow", data={"csrf_token": csrf, "next": "//evil.example/x"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/c/{creator.handle}")
    assert not service.is_following(fan.id, creator.id)


def test_button_errors_go_to_the_alert_area(client, make_creator, make_fan):
    fan = make_fan()
    csrf = log_in(client, fan)
    resp = client.post(f"/creators/{fan.id}/follow", headers={**HTMX, "X-CSRFToken": csrf})
    assert resp.status_code == 404 and resp.headers["HX-Retarget"] == "#flash"
    creator = make_creator()
    log_in(client, creator)
    resp = client.post(f"/creators/{creator.id}/follow", headers={**HTMX, "X-CSRFToken": csrf_of(client)})
    assert resp.status_code == 409


def csrf_of(client) -> str:
    from tests.conftest import csrf_from
    return csrf_from(client, "/wallet")


def test_button_needs_login_and_csrf(client, make_creator, make_fan):
    from tests.conftest import csrf_from
    creator = make_creator()
    resp = client.post(f"/creators/{creator.id}/follow", data={"csrf_token": csrf_from(client, "/login")})
    assert resp.status_code in (302, 303) and "/login" in resp.headers["Location"]
    log_in(client, make_fan())
    assert client.post(f"/creators/{creator.id}/follow", headers=HTMX).status_code == 400
    assert service.follower_count(creator.id) == 0


def test_stream_page_header_links_the_creator_and_has_the_button(client, make_creator, make_fan, make_stream):
    creator, fan = make_creator(name="Luna <Live>"), make_fan()
    stream = make_stream(creator=creator, live=True)
    log_in(client, fan)
    html = client.get(f"/streams/{stream.id}").get_data(as_text=True)
    assert f'<a class="creator-link" href="/c/{creator.handle}">Luna &lt;Live&gt;</a>' in html
    assert f'id="follow-{creator.id}"' in html and 'data-testid="follow-button"' in html
