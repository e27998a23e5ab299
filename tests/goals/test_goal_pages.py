"""The goal on pages: the bar on the stream page, the creator's HTMX form (errors next to
their fields, set, replace, clear), the goal OBS source and its URL on /creator/settings,
and what a (re)connect of the stream's channel receives."""
from __future__ import annotations

import re
import uuid

import pytest

from app.goals import service as goals
from app.realtime.channels import registry
from app.tips import service as tips
from tests.helpers import visible

HX = {"HX-Request": "true"}


@pytest.fixture()
def creator_page(client, login, make_creator, make_stream):
    creator = make_creator()
    stream = make_stream(creator, live=True)
    csrf = login(creator)
    return client, creator, stream, csrf


def post_goal(client, stream, csrf, **form):
    return client.post(f"/streams/{stream.id}/goal", data={"csrf_token": csrf, **form}, headers=HX)


def test_stream_page_shows_the_bar_with_its_figures(client, make_creator, make_fan, make_stream):
    creator, fan = make_creator(), make_fan(balance=100)
    stream = make_stream(creator, live=True)
    goals.set_goal(creator, stream.id, "Cake", 40)
    tips.send_tip(fan, creator.id, 25, "", {"streamId": stream.id}, str(uuid.uuid4()))
    html = client.get(f"/streams/{stream.id}").get_data(as_text=True)
    bar = re.search(r'<section id="stream-goal".*?</section>', html, re.S).group(0)
    assert 'role="progressbar"' in bar and 'aria-valuemax="40"' in bar and 'aria-valuenow="25"' in bar
    assert "Cake" in visible(bar) and "25 / 40 tokens" in visible(bar) and "Goal reached" not in bar
    tips.send_tip(fan, creator.id, 25, "", {"streamId": stream.id}, str(uuid.uuid4()))
    bar = re.search(r'<section id="stream-goal".*?</section>', client.get(f"/streams/{stream.id}").get_data(as_text=True),
                    re.S).group(0)
    assert "50 / 40 tokens" in visible(bar) and "Goal reached 🎉" in visible(bar) and 'aria-valuenow="40"' in bar


def test_without_a_goal_the_bar_waits_hidden_and_viewers_see_no_form(client, make_stream):
    stream = make_stream(live=True)
    html = client.get(f"/streams/{stream.id}").get_data(as_text=True)
    assert re.search(r'<section id="stream-goal"[^>]* hidden', html)
    assert 'id="goal-editor"' not in html and 'id="stream-leaderboard"' in html


def test_creator_sets_a_goal_with_the_form(creator_page):
    client, creator, stream, csrf = creator_page
    assert 'id="goal-editor"' in client.get(f"/streams/{stream.id}").get_data(as_text=True)
    resp = post_goal(client, stream, csrf, title="New outfit", targetTokens="5,000")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'id="goal-editor"' in html and "Goal set" in html
    assert 'id="stream-goal" class="goal" hx-swap-oob="true"' in html and "0 / 5,000 tokens" in visible(html)
    assert goals.current_goal(stream.id).goal.title == "New outfit"


@pytest.mark.parametrize("form, field, message", [
    ({"title": "", "targetTokens": "10"}, "goal-title", "Title is required."),
    ({"title": "x" * 81, "targetTokens": "10"}, "goal-title", "at most 80"),
    ({"title": "Fine", "targetTokens": "0"}, "goal-target", "at least 1"),
    ({"title": "Fine", "targetTokens": "abc"}, "goal-target", "whole number"),
    ({"title": "Fine", "targetTokens": "10000001"}, "goal-target", "at most 10,000,000"),
    ({"title": "Fine", "targetTokens": "١٠"}, "goal-target", "whole number"),
])
def test_form_errors_sit_next_to_their_field(creator_page, form, field, message):
    client, _, stream, csrf = creator_page
    resp = post_goal(client, stream, csrf, **form)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(rf'id="{field}-input"[^>]*aria-describedby="{field}-error"[^>]*aria-invalid="true"', html, re.S)
    assert re.search(rf'<p class="field-error" id="{field}-error" role="alert">[^<]*{re.escape(message)}', html)
    assert 'hx-swap-oob' not in html and goals.current_goal(stream.id) is None


def test_both_fields_wrong_shows_both_errors(creator_page):
    client, _, stream, csrf = creator_page
    html = post_goal(client, stream, csrf, title="", targetTokens="-3").get_data(as_text=True)
    assert 'id="goal-title-error"' in html and 'id="goal-target-error"' in html


def test_creator_clears_the_goal(creator_page):
    client, creator, stream, csrf = creator_page
    goals.set_goal(creator, stream.id, "Old", 10)
    assert "Clear goal" in client.get(f"/streams/{stream.id}").get_data(as_text=True)
    resp = client.post(f"/streams/{stream.id}/goal/clear", data={"csrf_token": csrf}, headers=HX)
    assert resp.status_code == 200 and "Goal cleared." in resp.get_data(as_text=True)
    assert goals.current_goal(stream.id) is None


def test_without_htmx_the_form_goes_back_to_the_stream(creator_page):
    client, _, stream, csrf = creator_page
    resp = client.post(f"/streams/{stream.id}/goal", data={"csrf_token": csrf, "title": "T", "targetTokens": "9"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/streams/{stream.id}")


def test_over_stream_shows_the_409_in_the_form(creator_page):
    client, creator, stream, csrf = creator_page
    from app.streams import service as streams
    streams.change_status(creator, stream.id, "end")
    resp = post_goal(client, stream, csrf, title="Late", targetTokens="9")
    assert resp.status_code == 409 and "this one is over" in resp.get_data(as_text=True)


def test_another_user_cannot_post_the_form(client, login, make_fan, make_stream):
    stream = make_stream(live=True)
    csrf = login(make_fan())
    assert post_goal(client, stream, csrf, title="Mine", targetTokens="9").status_code == 403
    assert goals.current_goal(stream.id) is None


def test_a_reconnect_receives_the_goal_and_the_board(app, ctx, make_creator, make_fan, make_stream):
    creator, fan = make_creator(), make_fan(balance=100)
    stream = make_stream(creator, live=True)
    goals.set_goal(creator, stream.id, "Sync", 90)
    tips.send_tip(fan, creator.id, 30, "", {"streamId": stream.id}, str(uuid.uuid4()))
    reg = registry()
    with app.test_request_context():
        state = reg.connect_state(reg.channel(stream.channel), stream.channel, None)
    assert 'id="stream-goal" class="goal" hx-swap-oob="true"' in state and "30 / 90 tokens" in visible(state)
    assert 'id="stream-leaderboard"' in state and fan.display_name in state


def test_obs_goal_page_and_its_url_on_settings(client, login, make_creator, make_stream):
    creator = make_creator()
    login(creator)
    settings = client.get("/creator/settings").get_data(as_text=True)
    url = re.search(r'id="goal-overlay-url"[^>]*value="([^"]+)"', settings, re.S) or \
        re.search(r'value="([^"]+/goal)"[^>]*id="goal-overlay-url"', settings, re.S)
    path = re.sub(r"^https?://[^/]+", "", url.group(1))
    assert re.fullmatch(r"/overlay/[\w-]{20,64}/goal", path)
    anon = client.application.test_client()
    empty = anon.get(path)
    assert empty.status_code == 200 and "X-Frame-Options" not in empty.headers
    assert empty.headers["Referrer-Policy"] == "no-referrer"
    assert re.search(r'<section id="stream-goal"[^>]* hidden', empty.get_data(as_text=True))
    stream = make_stream(creator, live=True)
    goals.set_goal(creator, stream.id, "<b>On air</b>", 70)
    html = anon.get(path).get_data(as_text=True)
    assert "&lt;b&gt;On air&lt;/b&gt;" in html and "0 / 70 tokens" in visible(html)
    assert f'ws-connect="{path.replace("/overlay/", "/ws/overlay/")}"' in html
    assert anon.get("/overlay/not-a-real-secret-at-all-xx/goal").status_code == 404
