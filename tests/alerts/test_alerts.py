"""Alert controls (DESIGN.md §12): GET/POST /api/creator/alerts and the settings form, the
minimum tip for a pop, the profanity filter, approval of OBS messages (API and buttons).

Real PostgreSQL and Redis: what is published is read back from Redis pub/sub."""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import redis as redis_lib
from sqlalchemy import text

from app.alerts import service as alerts
from app.extensions import db
from app.realtime.bus import user_channel
from app.tips import service as tips
from app.tips.pushes import overlay_channel
from tests.helpers import assert_error, run_together, visible

MAX_TIP = 100_000
RUDE = "you fucking legend"
MASKED = "you *** legend"


# ---- helpers ----------------------------------------------------------------------------

@contextmanager
def published(app, services, *channels):
    """Collect what is published on `channels` meanwhile: yields a dict channel → [html]."""
    prefix = app.config["REDIS_PREFIX"]
    client = redis_lib.Redis.from_url(services[1])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*(prefix + c for c in channels))
    got: dict[str, list[str]] = {c: [] for c in channels}
    try:
        while pubsub.get_message(timeout=0.05) is not None:
            pass
        yield got
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                got[message["channel"].decode()[len(prefix):]].append(message["data"].decode())
    finally:
        pubsub.close()
        client.close()


def tip(fan, creator, amount=100, message="", stream=None):
    context = {"streamId": stream.id} if stream else None
    return tips.send_tip(fan, creator.id, amount, message, context, str(uuid.uuid4())).tip


def set_alerts(creator, min_tokens=0, profanity=False, approval=False, sound=None):
    return alerts.update_settings(creator, min_tokens, profanity, approval, sound)


def status_of(tip_id):
    db.session.rollback()
    return db.session.scalar(text("SELECT message_status FROM tips WHERE id = :id"), {"id": tip_id})


@pytest.fixture()
def scene(make_fan, make_creator, make_stream, api_headers):
    creator, fan = make_creator(), make_fan(balance=5_000)
    stream = make_stream(creator, live=True)
    return SimpleNamespace(creator=creator, fan=fan, stream=stream, headers=api_headers(creator),
                           fan_headers=api_headers(fan))


# ---- the API ------------------------------------------------------------------------------

def test_get_alerts_of_a_new_creator_are_the_defaults(client, scene):
    resp = client.get("/api/creator/alerts", headers=scene.headers)
    assert resp.status_code == 200
    assert resp.get_json() == {"alerts": {"minTokens": 0, "profanityFilter": False, "requireApproval": False,
                                          "sound": None}}


def test_post_alerts_saves_and_answers_them_and_get_reads_them_back(client, scene):
    body = {"minTokens": 250, "profanityFilter": True, "requireApproval": True, "sound": "coin"}
    resp = client.post("/api/creator/alerts", json=body, headers=scene.headers)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"alerts": body}
    assert client.get("/api/creator/alerts", headers=scene.headers).get_json() == {"alerts": body}
    db.session.expire_all()
    assert (scene.creator.alert_min_tokens, scene.creator.profanity_filter, scene.creator.require_approval,
            scene.creator.alert_sound) == (250, True, True, "coin")


def test_sound_left_out_stays_and_null_silences(client, scene):
    client.post("/api/creator/alerts", json={"minTokens": 0, "profanityFilter": False, "requireApproval": False,
                                             "sound": "bell"}, headers=scene.headers)
    kept = client.post("/api/creator/alerts", json={"minTokens": 5, "profanityFilter": False,
                                                    "requireApproval": False}, headers=scene.headers)
    assert kept.get_json()["alerts"]["sound"] == "bell"
    silent = client.post("/api/creator/alerts", json={"minTokens": 5, "profanityFilter": False,
                                                      "requireApproval": False, "sound": None}, headers=scene.headers)
    assert silent.get_json()["alerts"]["sound"] is None


@pytest.mark.parametrize("path", ["/api/creator/alerts"])
def test_a_fan_gets_403_not_a_creator(client, scene, path):
    assert_error(client.get(path, headers=scene.fan_headers), 403, "not_a_creator")
    assert_error(client.post(path, json={"minTokens": 0, "profanityFilter": False, "requireApproval": False},
                             headers=scene.fan_headers), 403, "not_a_creator")


def test_anonymous_gets_401(client):
    assert_error(client.get("/api/creator/alerts"), 401)
    assert_error(client.post("/api/creator/alerts", json={}), 401)


GOOD = {"minTokens": 10, "profanityFilter": False, "requireApproval": False, "sound": "pop"}


@pytest.mark.parametrize("field,value", [
    ("minTokens", "1"), ("minTokens", -1), ("minTokens", MAX_TIP + 1), ("minTokens", 10**30), ("minTokens", 1.5),
    ("minTokens", True), ("minTokens", None), ("minTokens", "١٢"),
    ("profanityFilter", "true"), ("profanityFilter", 1), ("profanityFilter", None), ("profanityFilter", "on"),
    ("requireApproval", "false"), ("requireApproval", 0), ("requireApproval", None),
    ("sound", "trumpet"), ("sound", 1), ("sound", ""), ("sound", "COIN"), ("sound", ["coin"]), ("sound", True),
])
def test_bad_values_are_422_on_their_field_and_change_nothing(client, scene, field, value):
    resp = client.post("/api/creator/alerts", json={**GOOD, field: value}, headers=scene.headers)
    assert_error(resp, 422, "invalid_value", field=field)
    assert client.get("/api/creator/alerts", headers=scene.headers).get_json()["alerts"] == {
        "minTokens": 0, "profanityFilter": False, "requireApproval": False, "sound": None}


def test_the_bounds_of_min_tokens_are_accepted(client, scene):
    for value in (0, MAX_TIP):
        resp = client.post("/api/creator/alerts", json={**GOOD, "minTokens": value}, headers=scene.headers)
        assert resp.get_json()["alerts"]["minTokens"] == value


def test_a_nul_byte_is_400_and_a_non_object_body_is_400(client, scene):
    resp = client.post("/api/creator/alerts", data='{"minTokens": 0, "profanityFilter": false, '
                       '"requireApproval": false, "sound": "coin\\u0000"}',
                       headers={**scene.headers, "Content-Type": "application/json"})
    assert_error(resp, 400)
    assert_error(client.post("/api/creator/alerts", json=[1, 2], headers=scene.headers), 400, "invalid_json")
    assert alerts.current_settings(scene.creator).sound is None


# ---- minimum tokens ---------------------------------------------------------------------------

def test_a_tip_under_the_minimum_pops_up_nowhere_but_lands_in_every_list(app, services, scene):
    s = scene
    set_alerts(s.creator, min_tokens=100)
    channels = (s.stream.channel, overlay_channel(s.creator.id), user_channel(s.creator.id))
    with published(app, services, *channels) as got:
        small = tip(s.fan, s.creator, 99, "tiny", s.stream)
    on_stream, on_obs, feed = (got[c] for c in channels)
    assert on_obs == []  # no OBS alert at all
    assert len(on_stream) == 1 and 'id="tip-overlay"' not in on_stream[0]  # no pop on the stream's page
    assert f'id="recent-tip-{small.id}"' in on_stream[0]  # but in the recent tips
    assert any(f'id="feed-tip-{small.id}"' in m for m in feed)  # and in the creator's feed
    assert [v.tip.id for v in tips.recent_tips(stream_id=s.stream.id)][0] == small.id


def test_a_tip_at_the_minimum_pops_up_on_the_stream_and_on_obs(app, services, scene):
    s = scene
    set_alerts(s.creator, min_tokens=100, sound="chime")
    channels = (s.stream.channel, overlay_channel(s.creator.id))
    with published(app, services, *channels) as got:
        enough = tip(s.fan, s.creator, 100, "ok", s.stream)
    assert len(got[channels[1]]) == 1 and f'id="tip-{enough.id}"' in got[channels[1]][0]
    assert 'data-sound="chime"' in got[channels[1]][0]  # the pop carries the creator's sound
    assert 'id="tip-overlay"' in got[channels[0]][0] and f'id="tip-{enough.id}"' in got[channels[0]][0]


# ---- profanity ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rude", ["fuck off", "what the shit", "you asshole", "FUCKING great"])
def test_real_profanity_is_masked(rude):
    masked = alerts.mask_profanity(rude)
    assert masked != rude and "***" in masked


@pytest.mark.parametrize("innocent", ["Scunthorpe United", "the assassin", "first class", "Hello there!", ""])
def test_innocent_words_are_left_alone(innocent):
    assert alerts.mask_profanity(innocent) == innocent


def test_with_the_filter_on_the_room_and_obs_see_it_masked_but_it_is_stored_and_answered_raw(
        app, services, client, scene):
    s = scene
    set_alerts(s.creator, profanity=True)
    channels = (s.stream.channel, overlay_channel(s.creator.id), user_channel(s.creator.id))
    with published(app, services, *channels) as got:
        resp = client.post("/api/tips/send", json={"toCreatorId": s.creator.id, "amountTokens": 50, "message": RUDE,
                                                   "context": {"streamId": s.stream.id}},
                           headers={**s.fan_headers, "Idempotency-Key": str(uuid.uuid4())})
    assert resp.status_code == 201 and resp.get_json()["tip"]["message"] == RUDE  # the JSON keeps it as typed
    tip_id = resp.get_json()["tip"]["id"]
    assert db.session.scalar(text("SELECT message FROM tips WHERE id = :id"), {"id": tip_id}) == RUDE
    for channel in channels[:2]:  # the stream's pop and recent list, and OBS
        assert got[channel] and all("fucking" not in m for m in got[channel]), got[channel]
        assert MASKED in visible(got[channel][0])
    # The creator's own feed shows what was typed (they moderate it).
    assert any(RUDE in visible(m) for m in got[channels[2]])
    page = client.get(f"/streams/{s.stream.id}", headers=s.fan_headers).get_data(as_text=True)
    assert "fucking" not in page


def test_with_the_filter_off_the_message_shows_as_typed(app, services, scene):
    s = scene
    with published(app, services, s.stream.channel, overlay_channel(s.creator.id)) as got:
        tip(s.fan, s.creator, 50, RUDE, s.stream)
    assert RUDE in visible(got[s.stream.channel][0]) and RUDE in visible(got[overlay_channel(s.creator.id)][0])


def test_room_message_masks_any_line_of_the_room_such_as_the_chat_tip_line(scene):
    s = scene
    t = tip(s.fan, s.creator, 50, RUDE)
    assert alerts.room_message(t) == RUDE
    set_alerts(s.creator, profanity=True)
    assert alerts.room_message(t) == MASKED
    assert alerts.shown_text(RUDE, alerts.settings_of(s.creator.id)) == MASKED


# ---- approval ---------------------------------------------------------------------------------

def test_with_approval_on_a_message_waits_and_obs_plays_the_alert_without_it(app, services, scene):
    s = scene
    set_alerts(s.creator, approval=True, min_tokens=20)
    channels = (s.stream.channel, overlay_channel(s.creator.id))
    with published(app, services, *channels) as got:
        waiting = tip(s.fan, s.creator, 50, "say hi to mum", s.stream)
    assert status_of(waiting.id) == "pending"
    obs = got[channels[1]]
    assert len(obs) == 1 and f'id="tip-{waiting.id}"' in obs[0] and "say hi to mum" not in obs[0]
    assert "say hi to mum" in got[channels[0]][0]  # the viewers' page is not held back
    assert status_of(tip(s.fan, s.creator, 50, "").id) is None  # nothing to approve
    assert status_of(tip(s.fan, s.creator, 10, "under the minimum").id) is None  # never shows on OBS anyway


def approve(client, headers, tip_id, what="approve"):
    return client.post(f"/api/tips/{tip_id}/{what}", headers=headers)


def test_approve_queues_the_message_on_obs_once_and_then_it_cannot_be_hidden(app, services, client, scene):
    s = scene
    set_alerts(s.creator, approval=True, profanity=True, sound="bell")
    waiting = tip(s.fan, s.creator, 50, RUDE, s.stream)
    channels = (overlay_channel(s.creator.id), user_channel(s.creator.id))
    with published(app, services, *channels) as got:
        resp = approve(client, s.headers, waiting.id)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()["tip"]
    assert body["id"] == waiting.id and body["messageStatus"] == "approved" and body["message"] == RUDE
    obs = got[channels[0]]
    assert len(obs) == 1 and f'id="approved-tip-{waiting.id}"' in obs[0] and MASKED in visible(obs[0])
    assert 'data-sound="bell"' in obs[0]
    assert any(f'id="feed-approval-{waiting.id}"' in m and "Shown on stream" in m for m in got[channels[1]])
    with published(app, services, *channels) as again:
        replay = approve(client, s.headers, waiting.id)
    assert replay.status_code == 200 and replay.get_json()["tip"]["messageStatus"] == "approved"
    assert again[channels[0]] == []  # a replay plays nothing twice
    assert_error(approve(client, s.headers, waiting.id, "hide"), 409, "message_decided")
    assert status_of(waiting.id) == "approved"


def test_hide_never_shows_it_on_obs_and_cannot_be_approved_later(app, services, client, scene):
    s = scene
    set_alerts(s.creator, approval=True)
    waiting = tip(s.fan, s.creator, 50, "hidden words", s.stream)
    with published(app, services, overlay_channel(s.creator.id)) as got:
        assert approve(client, s.headers, waiting.id, "hide").get_json()["tip"]["messageStatus"] == "hidden"
        assert approve(client, s.headers, waiting.id, "hide").status_code == 200  # idempotent
        assert_error(approve(client, s.headers, waiting.id), 409, "message_decided")
    assert got[overlay_channel(s.creator.id)] == []
    assert status_of(waiting.id) == "hidden"


def test_only_the_tips_creator_decides(client, scene, make_creator, api_headers):
    s = scene
    set_alerts(s.creator, approval=True)
    waiting = tip(s.fan, s.creator, 50, "mine")
    assert_error(approve(client, api_headers(make_creator()), waiting.id), 403, "not_your_tip")
    assert_error(approve(client, s.fan_headers, waiting.id, "hide"), 403, "not_a_creator")
    assert_error(client.post(f"/api/tips/{waiting.id}/approve"), 401)
    assert status_of(waiting.id) == "pending"
    assert_error(approve(client, s.headers, 2**62), 404, "tip_not_found")
    plain = tip(s.fan, s.creator, 50, "")
    assert_error(approve(client, s.headers, plain.id), 409, "approval_not_needed")


def test_racing_approve_and_hide_make_exactly_one_decision(app, services, scene):
    s = scene
    set_alerts(s.creator, approval=True)
    waiting = tip(s.fan, s.creator, 50, "race")
    creator_id = s.creator.id

    def decide(i):
        from app.auth.models import User
        return alerts.decide_message(db.session.get(User, creator_id), waiting.id, "approve" if i % 2 else "hide")

    with published(app, services, overlay_channel(creator_id)) as got:
        results = run_together(app, 12, decide)
    changed = [r for r in results if isinstance(r, alerts.Decision) and r.changed]
    assert len(changed) == 1, results
    final = status_of(waiting.id)
    # The winner's kind all replay (200), the other kind all get 409 message_decided.
    for i, r in enumerate(results):
        ok = ("approved" if i % 2 else "hidden") == final
        assert isinstance(r, alerts.Decision) if ok else getattr(r, "code", None) == "message_decided", (i, r)
    assert len(got[overlay_channel(creator_id)]) == (1 if final == "approved" else 0)


# ---- the HTML side: the settings form and the feed's buttons --------------------------------

def test_the_settings_page_has_the_alerts_section(client, scene, login):
    login(scene.creator)
    page = client.get("/creator/settings").get_data(as_text=True)
    assert 'id="alert-settings"' in page and 'name="minTokens"' in page and 'data-play-sound' in page
    for name in alerts.SOUNDS:
        assert f'<option value="{name}"' in page


def test_the_settings_form_shows_its_error_next_to_the_field_and_saves(client, scene, login):
    token = login(scene.creator)
    hx = {"HX-Request": "true", "X-CSRFToken": token}
    bad = client.post("/creator/settings/alerts", data={"minTokens": "-3", "sound": "coin"}, headers=hx)
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'id="alert-min-error"' in html and 'aria-invalid="true"' in html and 'value="-3"' in html
    wrong_sound = client.post("/creator/settings/alerts", data={"minTokens": "5", "sound": "kazoo"}, headers=hx)
    assert wrong_sound.status_code == 422 and 'id="alert-sound-error"' in wrong_sound.get_data(as_text=True)
    good = client.post("/creator/settings/alerts", data={"minTokens": "1,000", "profanityFilter": "1",
                                                          "sound": "pop"}, headers=hx)
    assert good.status_code == 200 and 'data-testid="alert-settings-saved"' in good.get_data(as_text=True)
    db.session.refresh(scene.creator)
    assert alerts.current_settings(scene.creator) == alerts.AlertSettings(1000, True, False, "pop")
    plain = client.post("/creator/settings/alerts", data={"minTokens": "x", "csrf_token": token})
    assert plain.status_code == 422 and 'id="alert-min-error"' in plain.get_data(as_text=True)


def test_a_fan_cannot_post_the_settings_form(client, scene, login):
    token = login(scene.fan)
    resp = client.post("/creator/settings/alerts", data={"minTokens": "5"},
                       headers={"HX-Request": "true", "X-CSRFToken": token})
    assert resp.status_code == 403


def test_the_feed_buttons_decide_and_answer_their_lists_span(client, scene, login):
    s = scene
    set_alerts(s.creator, approval=True)
    waiting = tip(s.fan, s.creator, 50, "button me")
    token = login(s.creator)
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert f'data-testid="approve-tip-{waiting.id}"' in dashboard  # the dashboard's feed has the buttons
    no_csrf = client.post(f"/creator/tips/{waiting.id}/approve", headers={"HX-Request": "true"})
    assert no_csrf.status_code == 400 and status_of(waiting.id) == "pending"
    resp = client.post(f"/creator/tips/{waiting.id}/approve", data={"list": "dash-"},
                       headers={"HX-Request": "true", "X-CSRFToken": token})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)  # the button's own list's span, decided
    assert html.lstrip().startswith(f'<span id="dash-approval-{waiting.id}"') and "hx-swap-oob" not in html
    assert "Shown on stream" in html and "<button" not in html and status_of(waiting.id) == "approved"


def test_the_settings_cache_is_dropped_when_the_creator_changes_them(scene):
    s = scene
    assert alerts.settings_of(s.creator.id).min_tokens == 0
    set_alerts(s.creator, min_tokens=77)
    assert alerts.settings_of(s.creator.id).min_tokens == 77


def test_the_obs_page_ships_the_sounds_and_queues_in_a_hidden_inbox(client, scene):
    page = client.get(f"/overlay/{tips.overlay_secret(scene.creator)}").get_data(as_text=True)
    assert '<ul id="alert-queue" hidden>' in page and 'id="tip-overlay"' in page
    for name in alerts.SOUNDS:
        assert f'id="sound-{name}"' in page
        assert client.get(f"/static/sounds/{name}.ogg").status_code == 200
    assert "js/overlay.js" in page and "js/app.js" not in page


def test_the_shipped_sounds_are_small_ogg_files():
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "static" / "sounds"
    for name in alerts.SOUNDS:
        data = (root / f"{name}.ogg").read_bytes()
        assert data[:4] == b"OggS" and len(data) < 30_000


def test_a_sound_change_reaches_the_open_obs_source(app, services, scene):
    with published(app, services, overlay_channel(scene.creator.id)) as got:
        set_alerts(scene.creator, sound="coin")
        set_alerts(scene.creator, sound="coin", min_tokens=3)  # the same sound: nothing to say
    assert len(got[overlay_channel(scene.creator.id)]) == 1
    assert 'id="alert-sound" data-sound="coin"' in got[overlay_channel(scene.creator.id)][0]
