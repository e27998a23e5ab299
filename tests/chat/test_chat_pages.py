"""The stream page's chat (HTMX): the panel, the form and its errors, load earlier,
moderation buttons, tips in the history, and the ban list on /creator/settings."""
from __future__ import annotations

import re

from app.extensions import db
from app.leaderboard.service import forget_kings
from app.tips import service as tips
from tests.conftest import csrf_from
from tests.helpers import log_in, visible

HX = {"HX-Request": "true"}


def page(client, stream_id) -> str:
    resp = client.get(f"/streams/{stream_id}")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def post(client, csrf, stream_id, text, **headers):
    return client.post(f"/streams/{stream_id}/chat", data={"text": text, "csrf_token": csrf}, headers={**HX, **headers})


def test_the_page_shows_the_history_a_labelled_log_and_a_form_to_a_viewer(make_fan, make_stream, client, chat):
    fan, stream = make_fan(name="Reader"), make_stream(live=True)
    message_id = chat(fan, stream.id, "<b>bold?</b>").get_json()["message"]["id"]
    log_in(client, fan)
    html = page(client, stream.id)
    assert 'id="chat"' in html and 'role="log"' in html and 'aria-live="polite"' in html
    assert f'id="chat-{message_id}"' in html and "&lt;b&gt;bold?&lt;/b&gt;" in html and "<b>bold?" not in html
    assert '<label for="chat-text"' in html and 'name="text"' in html
    assert "chat-moderator" not in html  # moderation buttons stay hidden on a fan's page
    assert earlier_control(html) == (False, True)


def test_a_logged_out_viewer_reads_the_chat_and_is_asked_to_log_in(make_fan, make_stream, client, chat):
    stream = make_stream(live=True)
    chat(make_fan(), stream.id, "hello from a fan")
    html = page(client, stream.id)
    assert "hello from a fan" in html and "Log in to chat" in html and 'id="chat-form"' not in html


def test_no_chat_without_access_and_a_closed_chat_once_the_stream_ended(make_fan, make_stream, client):
    from app.streams import service as streams
    fan = make_fan()
    show = make_stream(type_="private", ticket_price=100, live=True)
    log_in(client, fan)
    assert 'id="chat"' not in page(client, show.id)
    ended = make_stream(live=True)
    streams.change_status(db.session.get(type(fan), ended.creator_id), ended.id, "end")
    html = page(client, ended.id)
    assert "its chat is closed" in html and 'id="chat-form"' not in html


def test_sending_returns_a_cleared_form_and_the_message_for_the_list(make_fan, make_stream, client):
    fan, stream = make_fan(name="Sender"), make_stream(live=True)
    csrf = log_in(client, fan)
    resp = post(client, csrf, stream.id, "  hi all  ")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'id="chat-form"' in html and 'value=""' in html and "aria-invalid" not in html
    assert re.search(r'<ul id="chat-list" hx-swap-oob="beforeend"><li id="chat-\d+"', html)
    assert "hi all" in html and "Sender" in html


def test_each_refusal_shows_next_to_the_field_with_what_was_typed(make_fan, make_creator, make_stream, client,
                                                                  api_headers):
    from app.streams import service as streams
    fan, creator = make_fan(), make_creator()
    stream = make_stream(creator, live=True)
    csrf = log_in(client, fan)
    cases = [("x" * 501, 422, "at most 500"), ("", 422, "required")]
    for typed, status, says in cases:
        resp = post(client, csrf, stream.id, typed)
        html = resp.get_data(as_text=True)
        assert resp.status_code == status, html
        assert 'aria-invalid="true"' in html and 'aria-describedby="chat-text-error"' in html
        assert 'id="chat-text-error"' in html and says in visible(html)
        assert f'value="{typed}"' in html

    client.post("/api/creator/bans", json={"userId": fan.id}, headers=api_headers(creator))
    resp = post(client, csrf, stream.id, "am I banned?")
    assert resp.status_code == 403 and "banned you" in visible(resp.get_data(as_text=True))
    client.delete(f"/api/creator/bans/{fan.id}", headers=api_headers(creator))

    streams.change_status(creator, stream.id, "end")
    resp = post(client, csrf, stream.id, "hello?")
    assert resp.status_code == 409 and "chat is closed" in visible(resp.get_data(as_text=True))


def test_the_form_says_too_fast_next_to_the_field_at_the_rate_limit(make_fan, make_stream, client):
    fan, stream = make_fan(), make_stream(live=True)
    csrf = log_in(client, fan)
    for i in range(5):
        assert post(client, csrf, stream.id, f"m{i}").status_code == 200
    resp = post(client, csrf, stream.id, "sixth")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 429 and 'id="chat-text-error"' in html and "too fast" in html
    assert 'value="sixth"' in html


def test_the_form_needs_its_csrf_token(make_fan, make_stream, client):
    fan, stream = make_fan(), make_stream(live=True)
    log_in(client, fan)
    resp = client.post(f"/streams/{stream.id}/chat", data={"text": "forged"})
    assert resp.status_code == 400
    resp = client.post(f"/streams/{stream.id}/chat", data={"text": "forged"}, headers={"Accept": "application/json"})
    assert resp.get_json()["code"] == "csrf_failed"
    assert db.session.execute(db.text("SELECT count(*) FROM chat_messages WHERE user_id = :u"),
                              {"u": fan.id}).scalar() == 0


def test_the_creators_page_has_delete_and_ban_and_their_lines_say_creator(make_fan, make_creator, make_stream,
                                                                         client, chat):
    fan, creator = make_fan(), make_creator()
    stream = make_stream(creator, live=True)
    fan_msg = chat(fan, stream.id, "hi creator").get_json()["message"]["id"]
    own = chat(creator, stream.id, "welcome").get_json()["message"]["id"]
    log_in(client, creator)
    html = page(client, stream.id)
    assert "chat-panel chat-moderator" in html
    fan_line = re.search(rf'<li id="chat-{fan_msg}".*?</li>', html, re.S).group(0)
    assert f"/streams/{stream.id}/chat/{fan_msg}/delete" in fan_line and "Ban" in fan_line
    assert f'"userId": "{fan.id}"' in fan_line and "Creator</span>" not in fan_line
    own_line = re.search(rf'<li id="chat-{own}".*?</li>', html, re.S).group(0)
    assert "Creator</span>" in own_line and "by-creator" in own_line and "Ban" not in visible(own_line)


def test_the_creators_top_tipper_wears_a_crown_with_a_label(make_fan, make_creator, make_stream, client, chat):
    king, other, creator = make_fan(balance=1000), make_fan(balance=1000), make_creator()
    stream = make_stream(creator, live=True)
    tips.send_tip(king, creator.id, 500, "", None, "king-1")
    tips.send_tip(other, creator.id, 100, "", None, "other-1")
    forget_kings()
    royal = chat(king, stream.id, "long live me").get_json()["message"]["id"]
    plain = chat(other, stream.id, "hi").get_json()["message"]["id"]
    html = page(client, stream.id)
    assert re.search(rf'<li id="chat-{royal}".*?aria-label="Top fan".*?👑', html, re.S)
    assert "👑" not in re.search(rf'<li id="chat-{plain}".*?</li>', html, re.S).group(0)


def test_the_history_merges_tips_and_messages_by_time(make_fan, make_creator, make_stream, client, chat):
    fan, creator = make_fan(balance=1000), make_creator()
    stream = make_stream(creator, live=True)
    first = chat(fan, stream.id, "before the tip").get_json()["message"]["id"]
    tip = tips.send_tip(fan, creator.id, 42, "for you", {"streamId": stream.id}, "merge-1").tip
    last = chat(fan, stream.id, "after the tip").get_json()["message"]["id"]
    html = page(client, stream.id)
    order = [html.index(f'id="chat-{first}"'), html.index(f'id="chat-tip-{tip.id}"'), html.index(f'id="chat-{last}"')]
    assert order == sorted(order)
    assert "for you" in re.search(rf'<li id="chat-tip-{tip.id}".*?</li>', html, re.S).group(0)


def earlier_control(html: str) -> tuple[bool, bool]:
    """Whether "Load earlier messages" shows, and whether "This is the start of the chat." does
    (both are always in the control: app.js shows the button when a long chat drops old lines)."""
    button = re.search(r'<button[^>]*data-testid="chat-earlier"[^>]*>', html).group(0)
    start = re.search(r'<p class="muted small"[^>]*>This is the start of the chat.</p>', html).group(0)
    return " hidden" not in button, " hidden" not in start


def test_load_earlier_gives_the_older_page_above_the_list_and_the_control_again(make_fan, make_stream, client,
                                                                               seed_messages):
    fan, stream = make_fan(), make_stream(live=True)
    ids = seed_messages(stream, fan, 110)
    html = page(client, stream.id)
    assert f'id="chat-{ids[-50]}"' in html and f'id="chat-{ids[-51]}"' not in html
    assert f"/streams/{stream.id}/chat?before={ids[-50]}" in html and earlier_control(html) == (True, False)

    older = client.get(f"/streams/{stream.id}/chat?before={ids[-50]}", headers=HX).get_data(as_text=True)
    assert 'hx-swap-oob="afterbegin"' in older and "data-chat-prepend" in older
    shown = [int(i) for i in re.findall(r'id="chat-(\d+)"', older)]
    assert shown == ids[-100:-50]
    assert f"before={ids[-100]}" in older
    oldest = client.get(f"/streams/{stream.id}/chat?before={ids[-100]}", headers=HX).get_data(as_text=True)
    assert [int(i) for i in re.findall(r'id="chat-(\d+)"', oldest)] == ids[:10]
    assert earlier_control(oldest) == (False, True)


def test_load_earlier_keeps_the_access_rule(make_fan, make_stream, client):
    fan = make_fan()
    show = make_stream(type_="private", ticket_price=100, live=True)
    log_in(client, fan)
    assert client.get(f"/streams/{show.id}/chat?before=5", headers=HX).status_code == 403
    assert client.get("/streams/987654321/chat", headers=HX).status_code == 404


def test_delete_and_ban_from_the_page_with_undo(make_fan, make_creator, make_stream, client, chat):
    fan, creator = make_fan(name="Troll"), make_creator()
    stream = make_stream(creator, live=True)
    message_id = chat(fan, stream.id, "spam").get_json()["message"]["id"]
    csrf = log_in(client, creator)
    resp = client.post(f"/streams/{stream.id}/chat/{message_id}/delete", headers={**HX, "X-CSRFToken": csrf})
    assert resp.status_code == 204  # the room's socket takes the line away, on this page too
    assert f'id="chat-{message_id}"' not in page(client, stream.id)

    resp = client.post("/creator/bans", data={"userId": str(fan.id)}, headers={**HX, "X-CSRFToken": csrf})
    assert resp.status_code == 200 and "Troll can't chat" in visible(resp.get_data(as_text=True))
    assert f"/creator/bans/{fan.id}/delete" in resp.get_data(as_text=True)  # Undo
    assert chat(fan, stream.id, "banned?").status_code == 403
    resp = client.post(f"/creator/bans/{fan.id}/delete", headers={**HX, "X-CSRFToken": csrf,
                                                                  "HX-Target": "chat-status"})
    assert resp.status_code == 200 and "Troll can chat again" in visible(resp.get_data(as_text=True))
    assert chat(fan, stream.id, "free").status_code == 201


def test_a_fan_cannot_delete_or_ban_from_the_page(make_fan, make_stream, client, chat):
    fan, other = make_fan(), make_fan()
    stream = make_stream(live=True)
    message_id = chat(other, stream.id, "mine").get_json()["message"]["id"]
    csrf = log_in(client, fan)
    headers = {**HX, "X-CSRFToken": csrf}
    assert client.post(f"/streams/{stream.id}/chat/{message_id}/delete", headers=headers).status_code == 403
    assert client.post("/creator/bans", data={"userId": str(other.id)}, headers=headers).status_code == 403
    assert client.post(f"/creator/bans/{other.id}/delete", headers=headers).status_code == 403


def test_settings_list_the_bans_in_force_with_unban(make_fan, make_creator, client, api_headers, clock):
    banned, brief, creator = make_fan(name="Banned Bob"), make_fan(name="Brief Bea"), make_creator()
    client.post("/api/creator/bans", json={"userId": banned.id}, headers=api_headers(creator))
    client.post("/api/creator/bans", json={"userId": brief.id, "minutes": 1}, headers=api_headers(creator))
    csrf = log_in(client, creator)
    html = client.get("/creator/settings").get_data(as_text=True)
    assert "Chat bans" in html and "Banned Bob" in html and "Brief Bea" in html and "until you unban them" in html
    clock.advance(minutes=2)
    html = client.get("/creator/settings").get_data(as_text=True)
    assert "Banned Bob" in html and "Brief Bea" not in html
    resp = client.post(f"/creator/bans/{banned.id}/delete", headers={**HX, "X-CSRFToken": csrf,
                                                                     "HX-Target": "chat-bans"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="chat-bans"' in html and "Nobody is banned." in html
    assert "Nobody is banned." in client.get("/creator/settings").get_data(as_text=True)
    assert csrf_from(client, "/creator/settings")
