"""The chat's JSON API (DESIGN.md §12 "Chat"): posting, history, moderation, bans."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from app.chat.models import ChatMessage
from app.extensions import db
from app.streams import service as streams
from app.streams import tickets
from tests.helpers import assert_error


# ---- posting --------------------------------------------------------------------------------

def test_a_viewer_posts_a_message_and_gets_it_back_with_its_author_trimmed(make_fan, make_stream, chat):
    fan, stream = make_fan(name="Chatty"), make_stream(live=True)
    resp = chat(fan, stream.id, "  hello room  ")
    assert resp.status_code == 201, resp.get_json()
    message = resp.get_json()["message"]
    assert set(message) == {"id", "userId", "displayName", "text", "createdAt"}
    assert (message["userId"], message["displayName"], message["text"]) == (fan.id, "Chatty", "hello room")
    row = db.session.get(ChatMessage, message["id"])
    assert (row.stream_id, row.user_id, row.text) == (stream.id, fan.id, "hello room")


@pytest.mark.parametrize("value", [None, 5, 1.5, True, [], ["hi"], {}, "", "   ", "\t", "\u200b\u200d",
                                   "x" * 501, "two\nlines", "tab\there", "rtl \u202e override", "bell\x07"])
def test_text_must_be_one_line_of_1_to_500_visible_characters(make_fan, make_stream, chat, value):
    fan, stream = make_fan(), make_stream(live=True)
    assert_error(chat(fan, stream.id, value), 422, field="text")
    assert db.session.scalar(text("SELECT count(*) FROM chat_messages WHERE user_id = :u"), {"u": fan.id}) == 0


def test_500_characters_and_500_emoji_are_accepted(make_fan, make_stream, chat):
    fan, stream = make_fan(), make_stream(live=True)
    assert chat(fan, stream.id, "x" * 500).status_code == 201
    resp = chat(fan, stream.id, "😀" * 500)
    assert resp.status_code == 201 and resp.get_json()["message"]["text"] == "😀" * 500


def test_nul_bytes_lone_surrogates_and_non_objects_are_refused_before_anything_is_read(make_fan, make_stream,
                                                                                       client, api_headers):
    fan, stream = make_fan(), make_stream(live=True)
    url, headers = f"/api/streams/{stream.id}/chat", api_headers(fan)
    for body in ('{"text": "a\\u0000b"}', '{"text": "a\\ud800b"}'):
        assert_error(client.post(url, data=body, content_type="application/json", headers=headers), 400,
                     "invalid_text")
    for body in ('"hi"', "[1]", "not json"):
        assert_error(client.post(url, data=body, content_type="application/json", headers=headers), 400,
                     "invalid_json")


def test_unknown_stream_is_404_and_no_one_without_access_may_post_or_read(make_fan, make_stream, chat, client,
                                                                          api_headers):
    fan, holder = make_fan(), make_fan(balance=500)
    show = make_stream(type_="private", ticket_price=100, live=True)
    tickets.checkout(holder, show)
    for stream_id in (987654321, 2**63 - 1):
        assert_error(chat(fan, stream_id, "hi"), 404, "stream_not_found")
    assert client.post(f"/api/streams/{2**63}/chat", json={"text": "hi"}, headers=api_headers(fan)).status_code == 404
    assert_error(chat(fan, show.id, "let me in"), 403, "no_access")
    assert_error(client.get(f"/api/streams/{show.id}/chat", headers=api_headers(fan)), 403, "no_access")
    assert_error(client.get(f"/api/streams/{show.id}/chat"), 403, "no_access")  # logged out
    assert chat(holder, show.id, "ticket holder here").status_code == 201
    assert chat(db.session.get(type(fan), show.creator_id), show.id, "welcome").status_code == 201


def test_anyone_may_read_a_public_streams_chat_but_only_a_logged_in_user_may_post(make_fan, make_stream, chat,
                                                                                   client):
    fan, stream = make_fan(), make_stream(live=True)
    chat(fan, stream.id, "first")
    resp = client.get(f"/api/streams/{stream.id}/chat")
    assert resp.status_code == 200 and [m["text"] for m in resp.get_json()["messages"]] == ["first"]
    assert_error(client.post(f"/api/streams/{stream.id}/chat", json={"text": "anon"}), 401)


def test_a_scheduled_stream_has_an_open_chat_an_ended_or_canceled_one_refuses_409(make_fan, make_stream, chat):
    fan = make_fan()
    scheduled = make_stream()
    assert chat(fan, scheduled.id, "waiting for the show").status_code == 201
    ended, canceled = make_stream(live=True), make_stream()
    streams.change_status(db.session.get(type(fan), ended.creator_id), ended.id, "end")
    streams.change_status(db.session.get(type(fan), canceled.creator_id), canceled.id, "cancel")
    for stream in (ended, canceled):
        assert_error(chat(fan, stream.id, "hello?"), 409, "stream_not_live")


def test_chat_is_rate_limited_per_user_over_all_rooms(make_fan, make_stream, chat):
    """CHAT_LIMIT_PER_USER (5 per 10 seconds): the sixth message anywhere is 429; others still post."""
    fan, other = make_fan(), make_fan()
    one, two = make_stream(live=True), make_stream(live=True)
    for i in range(5):
        assert chat(fan, (one, two)[i % 2].id, f"msg {i}").status_code == 201
    body = assert_error(chat(fan, two.id, "one too many"), 429, "rate_limited")
    assert body["error"]
    assert chat(other, one.id, "not me").status_code == 201
    assert db.session.scalar(text("SELECT count(*) FROM chat_messages WHERE user_id = :u"), {"u": fan.id}) == 5


def test_the_creators_profanity_filter_masks_the_text_shown_and_the_raw_text_is_stored(make_fan, make_creator,
                                                                                        make_stream, chat):
    from app.alerts.service import update_settings

    creator = make_creator()
    update_settings(creator, 0, True, False)
    fan, stream = make_fan(), make_stream(creator, live=True)
    resp = chat(fan, stream.id, "what the fuck")
    assert resp.status_code == 201
    assert "fuck" not in resp.get_json()["message"]["text"] and "***" in resp.get_json()["message"]["text"]
    assert db.session.get(ChatMessage, resp.get_json()["message"]["id"]).text == "what the fuck"
    update_settings(creator, 0, False, False)  # through the service: it drops the settings cache
    assert chat(make_fan(), stream.id, "what the fuck").get_json()["message"]["text"] == "what the fuck"


# ---- history --------------------------------------------------------------------------------

def test_history_is_the_newest_50_oldest_first_and_pages_back_with_before(make_fan, make_stream, client,
                                                                          seed_messages):
    fan, stream = make_fan(), make_stream(live=True)
    ids = seed_messages(stream, fan, 120)
    first = client.get(f"/api/streams/{stream.id}/chat").get_json()["messages"]
    assert [m["id"] for m in first] == ids[-50:]
    second = client.get(f"/api/streams/{stream.id}/chat?before={first[0]['id']}").get_json()["messages"]
    assert [m["id"] for m in second] == ids[-100:-50]
    third = client.get(f"/api/streams/{stream.id}/chat?before={second[0]['id']}").get_json()["messages"]
    assert [m["id"] for m in third] == ids[:20]
    assert client.get(f"/api/streams/{stream.id}/chat?before={ids[0]}").get_json()["messages"] == []


def test_history_belongs_to_its_stream_and_leaves_deleted_messages_out(make_fan, make_stream, chat, client,
                                                                       api_headers):
    fan, stream, other = make_fan(), make_stream(live=True), make_stream(live=True)
    kept = chat(fan, stream.id, "kept").get_json()["message"]["id"]
    gone = chat(fan, stream.id, "gone").get_json()["message"]["id"]
    chat(fan, other.id, "elsewhere")
    creator = db.session.get(type(fan), stream.creator_id)
    assert client.post(f"/api/streams/{stream.id}/chat/{gone}/delete", headers=api_headers(creator)).status_code == 200
    assert [m["id"] for m in client.get(f"/api/streams/{stream.id}/chat").get_json()["messages"]] == [kept]


@pytest.mark.parametrize("before", ["abc", "-1", "0", "1.5", "\u0663", str(2**63), " "])
def test_before_must_be_a_message_id(make_stream, client, before):
    stream = make_stream(live=True)
    assert_error(client.get(f"/api/streams/{stream.id}/chat", query_string={"before": before}), 422,
                 field="before")


# ---- moderation: delete ------------------------------------------------------------------------

def test_only_the_streams_creator_deletes_a_message_of_that_stream(make_fan, make_creator, make_stream, chat, client,
                                                                   api_headers):
    fan, creator = make_fan(), make_creator()
    stream, theirs = make_stream(creator, live=True), make_stream(live=True)
    message_id = chat(fan, stream.id, "rude").get_json()["message"]["id"]
    other_id = chat(fan, theirs.id, "in another room").get_json()["message"]["id"]
    url = f"/api/streams/{stream.id}/chat/{message_id}/delete"
    assert_error(client.post(url, headers=api_headers(fan)), 403, "not_stream_owner")
    other_creator = db.session.get(type(fan), theirs.creator_id)
    assert_error(client.post(url, headers=api_headers(other_creator)), 403, "not_stream_owner")
    for bad in (f"/api/streams/{stream.id}/chat/{other_id}/delete", f"/api/streams/{stream.id}/chat/987654321/delete"):
        assert_error(client.post(bad, headers=api_headers(creator)), 404, "message_not_found")
    assert_error(client.post(f"/api/streams/987654321/chat/{message_id}/delete", headers=api_headers(creator)), 404,
                 "stream_not_found")
    assert client.post(f"/api/streams/{stream.id}/chat/{2**63}/delete", headers=api_headers(creator)).status_code == 404
    db.session.expire_all()
    assert db.session.get(ChatMessage, message_id).deleted_at is None

    resp = client.post(url, headers=api_headers(creator))
    assert resp.status_code == 200 and resp.get_json()["message"]["id"] == message_id
    assert resp.get_json()["message"]["deletedAt"]
    db.session.expire_all()
    row = db.session.get(ChatMessage, message_id)
    assert row.deleted_at is not None and row.deleted_by == creator.id and row.text == "rude"
    assert client.post(url, headers=api_headers(creator)).status_code == 200  # again: nothing changes


# ---- moderation: bans -------------------------------------------------------------------------

def test_a_banned_user_gets_403_banned_in_every_room_of_that_creator_and_only_there(make_fan, make_creator,
                                                                                    make_stream, chat, client,
                                                                                    api_headers):
    fan, creator = make_fan(), make_creator()
    one, two, elsewhere = make_stream(creator, live=True), make_stream(creator), make_stream(live=True)
    resp = client.post("/api/creator/bans", json={"userId": fan.id}, headers=api_headers(creator))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json() == {"ban": {"userId": fan.id, "displayName": fan.display_name, "expiresAt": None}}
    for stream in (one, two):
        assert_error(chat(fan, stream.id, "let me talk"), 403, "banned")
    assert chat(fan, elsewhere.id, "other rooms are fine").status_code == 201
    assert client.get(f"/api/streams/{one.id}/chat", headers=api_headers(fan)).status_code == 200  # still reads

    assert client.delete(f"/api/creator/bans/{fan.id}", headers=api_headers(creator)).status_code == 204
    assert chat(fan, one.id, "thanks").status_code == 201
    assert client.delete(f"/api/creator/bans/{fan.id}", headers=api_headers(creator)).status_code == 204


def test_a_banned_user_can_still_tip(make_fan, make_creator, make_stream, client, api_headers):
    fan, creator = make_fan(balance=500), make_creator()
    stream = make_stream(creator, live=True)
    client.post("/api/creator/bans", json={"userId": fan.id}, headers=api_headers(creator))
    resp = client.post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 100,
                                               "context": {"streamId": stream.id}},
                       headers=api_headers(fan, **{"Idempotency-Key": "banned-tip-1"}))
    assert resp.status_code == 201, resp.get_json()


def test_a_ban_for_minutes_expires_and_a_second_ban_replaces_the_first(make_fan, make_creator, make_stream, chat,
                                                                       client, api_headers, clock):
    fan, creator = make_fan(), make_creator()
    stream = make_stream(creator, live=True)
    resp = client.post("/api/creator/bans", json={"userId": fan.id, "minutes": 10}, headers=api_headers(creator))
    assert resp.status_code == 201 and resp.get_json()["ban"]["expiresAt"]
    assert_error(chat(fan, stream.id, "hi"), 403, "banned")
    listed = client.get("/api/creator/bans", headers=api_headers(creator)).get_json()["bans"]
    assert [b["userId"] for b in listed] == [fan.id]
    clock.advance(minutes=10, seconds=1)
    assert chat(fan, stream.id, "back again").status_code == 201
    assert client.get("/api/creator/bans", headers=api_headers(creator)).get_json()["bans"] == []

    resp = client.post("/api/creator/bans", json={"userId": fan.id, "minutes": 5}, headers=api_headers(creator))
    assert resp.status_code == 200  # the expired ban's row, replaced
    resp = client.post("/api/creator/bans", json={"userId": fan.id}, headers=api_headers(creator))
    assert resp.status_code == 200 and resp.get_json()["ban"]["expiresAt"] is None
    clock.advance(days=400)
    assert_error(chat(fan, stream.id, "still?"), 403, "banned")


@pytest.mark.parametrize("body, field", [
    ({}, "userId"), ({"userId": None}, "userId"), ({"userId": "5"}, "userId"), ({"userId": True}, "userId"),
    ({"userId": 1.5}, "userId"), ({"userId": 0}, "userId"), ({"userId": -3}, "userId"), ({"userId": 2**63}, "userId"),
    ({"userId": "FAN", "minutes": 0}, "minutes"), ({"userId": "FAN", "minutes": 525_601}, "minutes"),
    ({"userId": "FAN", "minutes": "5"}, "minutes"), ({"userId": "FAN", "minutes": 2.5}, "minutes"),
    ({"userId": "FAN", "minutes": True}, "minutes"),
])
def test_ban_input_is_checked(make_fan, make_creator, client, api_headers, body, field):
    fan, creator = make_fan(), make_creator()
    body = {k: fan.id if v == "FAN" else v for k, v in body.items()}
    assert_error(client.post("/api/creator/bans", json=body, headers=api_headers(creator)), 422, field=field)
    assert db.session.scalar(text("SELECT count(*) FROM chat_bans WHERE creator_id = :c"), {"c": creator.id}) == 0


def test_only_creators_ban_not_themselves_and_only_people_who_exist(make_fan, make_creator, client, api_headers):
    fan, creator = make_fan(), make_creator()
    assert_error(client.post("/api/creator/bans", json={"userId": creator.id}, headers=api_headers(fan)), 403,
                 "not_a_creator")
    assert_error(client.delete(f"/api/creator/bans/{creator.id}", headers=api_headers(fan)), 403, "not_a_creator")
    assert_error(client.get("/api/creator/bans", headers=api_headers(fan)), 403, "not_a_creator")
    assert_error(client.post("/api/creator/bans", json={"userId": creator.id}, headers=api_headers(creator)), 422,
                 "self_ban", "userId")
    assert_error(client.post("/api/creator/bans", json={"userId": 987654321}, headers=api_headers(creator)), 404,
                 "user_not_found")
    assert_error(client.post("/api/creator/bans", json={"userId": fan.id}), 401)


def test_the_creator_cannot_be_shut_out_of_their_own_room(make_creator, make_stream, chat):
    creator = make_creator()
    stream = make_stream(creator, live=True)
    assert chat(creator, stream.id, "my room").status_code == 201
