"""The creator page /c/<handle> and the Profile section of /creator/settings
(DESIGN.md §13): what a visitor sees, and forms that show their errors next to the field."""
from __future__ import annotations

import io
import os
import re
from datetime import datetime, timedelta, timezone

import pytest

from app.calls import service as calls
from app.extensions import db
from app.follows import service as follows
from app.profiles import service as profiles
from tests.helpers import log_in, visible
from tests.profiles.images import image_bytes

HTMX = {"HX-Request": "true"}


def page(client, creator, status=200) -> str:
    resp = client.get(f"/c/{creator.handle}")
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    return resp.get_data(as_text=True)


def test_page_shows_name_handle_bio_and_follower_count(client, make_creator, make_fan):
    creator = make_creator(name="Nova Star")
    profiles.update_profile(creator, bio="Singer.\nSongwriter.")
    follows.follow(make_fan(), creator.id)
    text = visible(page(client, creator))
    assert "Nova Star" in text and f"@{creator.handle}" in text
    assert "Singer. Songwriter." in text and "1 follower" in text


def test_hostile_name_and_bio_stay_text(client, make_creator):
    creator = make_creator(name='<img src=x onerror=alert(1)>')
    profiles.update_profile(creator, bio='<script>alert("bio")</script>\n"quoted" & <b>bold</b>')
    html = page(client, creator)
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;bio&#34;)&lt;/script&gt;" in html


def test_unknown_or_malformed_handle_is_a_404_page(client):
    for path in ("/c/nobody_here_at_all", "/c/AB", "/c/" + "a" * 31, "/c/%C3%A9mile", "/c/a%20b", "/c/..%2F..%2F"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert "text/html" in resp.headers["Content-Type"]


def test_live_stream_has_a_watch_link_and_upcoming_shows_time_and_ticket_price(client, make_creator, make_stream):
    creator = make_creator()
    live = make_stream(creator=creator, title="Morning jam", live=True)
    starts = datetime.now(timezone.utc) + timedelta(days=2)
    make_stream(creator=creator, type_="private", title="VIP night", ticket_price=1500, starts_at=starts.isoformat())
    make_stream(title="Someone else's show", live=True)
    html = page(client, creator)
    live_part = visible(re.search(r'data-testid="creator-live".*?</section>', html, re.S).group(0))
    assert "Morning jam" in live_part and "Watch" in live_part
    assert f'href="/streams/{live.id}"' in html
    upcoming = visible(re.search(r'data-testid="creator-upcoming".*?</section>', html, re.S).group(0))
    assert "VIP night" in upcoming and "1,500 tokens" in upcoming and starts.strftime("%b %-d") in upcoming
    assert "Someone else's show" not in html


def test_no_shows_says_so(client, make_creator):
    assert "No shows scheduled." in visible(page(client, make_creator()))


def test_video_call_button_only_when_calls_are_open(client, make_creator, make_fan):
    creator = make_creator()
    log_in(client, make_fan())
    assert 'data-testid="creator-call"' not in page(client, creator)
    calls.update_settings(creator, 40, True)
    html = page(client, creator)
    assert "40 tokens per minute" in visible(html)
    assert f'hx-get="/calls/new?creator={creator.id}"' in html


def test_logged_out_visitors_get_log_in_links_with_next(client, make_creator):
    creator = make_creator()
    calls.update_settings(creator, 40, True)
    html = page(client, creator)
    assert f'href="/login?next=/c/{creator.handle}"' in html.replace("%2F", "/")
    assert "Log in to follow" in visible(html) and "Log in to call" in visible(html)
    assert 'data-testid="follow-button"' not in html


def test_the_creator_sees_edit_profile_and_no_follow_button(client, make_creator):
    creator = make_creator()
    log_in(client, creator)
    html = page(client, creator)
    assert 'data-testid="edit-profile"' in html and 'href="/creator/settings#profile-settings"' in html
    assert 'data-testid="follow-button"' not in html


def test_fans_see_follow_or_following(client, make_creator, make_fan):
    creator, fan = make_creator(), make_fan()
    log_in(client, fan)
    assert ">Follow<" in page(client, creator)
    follows.follow(fan, creator.id)
    html = page(client, creator)
    assert ">Following<" in html and 'data-testid="edit-profile"' not in html


def test_avatar_image_or_initial_placeholder(client, make_creator):
    from app.profiles import avatars
    creator = make_creator(name="zed")
    assert 'avatar-placeholder" aria-hidden="true">Z<' in page(client, creator)
    avatars.set_avatar(creator, image_bytes("PNG"))
    assert f'src="/avatars/{creator.id}.webp?v=1"' in page(client, creator)


# ---- /creator/settings → Profile ---------------------------------------------------------

def settings_post(client, csrf, path, data, htmx=True, **kw):
    headers = {"X-CSRFToken": csrf, **(HTMX if htmx else {})}
    return client.post(path, data=data, headers=headers, **kw)


def test_settings_has_the_profile_section_with_current_values(client, make_creator):
    creator = make_creator()
    profiles.update_profile(creator, bio="Hi <there>")
    log_in(client, creator)
    html = client.get("/creator/settings").get_data(as_text=True)
    assert 'id="profile-settings"' in html and f'value="{creator.handle}"' in html
    assert ">Hi &lt;there&gt;</textarea>" in html
    assert 'for="profile-handle"' in html and 'for="profile-bio"' in html and 'for="profile-avatar-file"' in html


@pytest.mark.parametrize("data, field, status", [
    ({"handle": "no", "bio": ""}, "handle", 422),
    ({"handle": "Bad Handle!", "bio": ""}, "handle", 422),
    ({"handle": "", "bio": ""}, "handle", 422),
    ({"bio": "x" * 501}, "bio", 422),
])
def test_profile_form_shows_the_error_next_to_its_field(client, make_creator, data, field, status):
    creator = make_creator()
    csrf = log_in(client, creator)
    data = {"handle": creator.handle, **data}
    resp = settings_post(client, csrf, "/creator/settings/profile", data)
    assert resp.status_code == status
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith("<form") and f'id="profile-{field}-error"' in html
    assert f'aria-describedby="profile-{field}-error"' in html
    db.session.refresh(creator)
    assert creator.bio == ""


def test_a_taken_handle_is_shown_as_409_next_to_the_handle(client, make_creator):
    other, creator = make_creator(), make_creator()
    csrf = log_in(client, creator)
    resp = settings_post(client, csrf, "/creator/settings/profile", {"handle": other.handle, "bio": ""})
    assert resp.status_code == 409
    assert "That handle is taken" in visible(resp.get_data(as_text=True))
    assert f'value="{other.handle}"' in resp.get_data(as_text=True)  # what was typed stays


def test_profile_form_saves_and_says_so(client, make_creator):
    creator = make_creator()
    csrf = log_in(client, creator)
    resp = settings_post(client, csrf, "/creator/settings/profile", {"handle": f"new_{creator.id}", "bio": "a\r\nb"})
    assert resp.status_code == 200 and 'data-testid="profile-saved"' in resp.get_data(as_text=True)
    db.session.refresh(creator)
    assert (creator.handle, creator.bio) == (f"new_{creator.id}", "a\nb")


def test_profile_form_without_htmx_redirects_or_shows_the_page_with_the_error(client, make_creator):
    creator = make_creator()
    csrf = log_in(client, creator)
    ok = settings_post(client, csrf, "/creator/settings/profile", {"handle": creator.handle, "bio": "x"}, htmx=False)
    assert ok.status_code == 303 and ok.headers["Location"].endswith("/creator/settings")
    bad = settings_post(client, csrf, "/creator/settings/profile", {"handle": "x", "bio": "x"}, htmx=False)
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'id="call-settings"' in html and 'id="profile-handle-error"' in html


def test_fans_cannot_post_the_profile_forms(client, make_fan):
    csrf = log_in(client, make_fan())
    assert settings_post(client, csrf, "/creator/settings/profile", {"handle": "fan_handle", "bio": ""}).status_code == 403
    resp = settings_post(client, csrf, "/creator/settings/avatar",
                         {"avatar": (io.BytesIO(image_bytes("PNG")), "a.png")}, content_type="multipart/form-data")
    assert resp.status_code == 403


def test_profile_forms_need_csrf(client, make_creator):
    creator = make_creator()
    log_in(client, creator)
    resp = client.post("/creator/settings/profile", data={"handle": "stolen_handle", "bio": "pwned"}, headers=HTMX)
    assert resp.status_code == 400
    db.session.refresh(creator)
    assert creator.bio == ""


def test_avatar_form_uploads_and_shows_the_new_picture(client, make_creator):
    creator = make_creator()
    csrf = log_in(client, creator)
    resp = settings_post(client, csrf, "/creator/settings/avatar",
                         {"avatar": (io.BytesIO(image_bytes("JPEG")), "me.jpg", "image/jpeg")},
                         content_type="multipart/form-data")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'data-testid="avatar-saved"' in html and f'src="/avatars/{creator.id}.webp?v=1"' in html


@pytest.mark.parametrize("data, message", [
    (b"not an image", "Upload a PNG, JPEG or WebP image."),
    (os.urandom(3 * 1024 * 1024), "larger than 2 MB"),
    (b"", "Choose an image"),
])
def test_avatar_form_shows_the_error_next_to_the_field_and_stores_nothing(client, make_creator, data, message):
    creator = make_creator()
    csrf = log_in(client, creator)
    resp = settings_post(client, csrf, "/creator/settings/avatar",
                         {"avatar": (io.BytesIO(data), "a.png", "image/png")}, content_type="multipart/form-data")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="profile-avatar"')  # the form alone, swapped in place
    assert 'id="profile-avatar-error"' in html and message in visible(html)
    db.session.refresh(creator)
    assert creator.avatar_version is None


def test_a_3mb_avatar_without_htmx_shows_the_settings_page_with_the_error(client, make_creator):
    creator = make_creator()
    csrf = log_in(client, creator)
    resp = client.post("/creator/settings/avatar", content_type="multipart/form-data",
                       data={"csrf_token": csrf, "avatar": (io.BytesIO(os.urandom(3 * 1024 * 1024)), "a.png")})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="call-settings"' in html and 'id="profile-avatar-error"' in html


def test_creator_link_links_creators_and_leaves_fans_and_markup_as_text(app, make_creator, make_fan):
    from app.profiles.routes import creator_link
    creator, fan = make_creator(name="A & <B>"), make_fan(name="<i>fan</i>")
    with app.test_request_context():
        assert str(creator_link(creator)) == f'<a class="creator-link" href="/c/{creator.handle}">A &amp; &lt;B&gt;</a>'
        assert str(creator_link(fan)) == "&lt;i&gt;fan&lt;/i&gt;"
        assert str(creator_link("<b>x</b>", "some_handle")) == \
            '<a class="creator-link" href="/c/some_handle">&lt;b&gt;x&lt;/b&gt;</a>'
        assert str(creator_link("Name", None)) == "Name" and str(creator_link(None)) == ""


def test_fan_spending_links_the_creator(client, make_creator, make_fan):
    import uuid
    from app.tips.service import send_tip
    creator, fan = make_creator(), make_fan(balance=100)
    send_tip(fan, creator.id, 10, "", None, str(uuid.uuid4()))
    log_in(client, fan)
    html = client.get("/spending").get_data(as_text=True)
    assert f'<a class="creator-link" href="/c/{creator.handle}">' in html


def test_call_page_links_the_creator_for_the_fan_only(client, new_client, make_call):
    fan, creator, call_id = make_call(accept=False)
    log_in(client, fan)
    html = client.get(f"/calls/{call_id}").get_data(as_text=True)
    assert f'Call with <a class="creator-link" href="/c/{creator.handle}">' in html
    other = new_client()
    log_in(other, creator)
    html = other.get(f"/calls/{call_id}").get_data(as_text=True)
    assert 'Call with <a' not in html and "creator-link" not in html.split('id="call-title"')[1][:200]
