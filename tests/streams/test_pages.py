"""Stream pages, /creator/streams, /creator/settings and the OBS overlay, Discover (DESIGN.md §5, §8, §10)."""
from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from app.extensions import db
from app.streams import service as streams

HTMX = {"HX-Request": "true"}
NASTY_TITLE = '<script>alert("pwn")</script> & <b>bold</b>'


# ---- helpers ----------------------------------------------------------------

def page(client, path, status=200, **kw) -> str:
    resp = client.get(path, **kw)
    assert resp.status_code == status, (path, resp.status_code, resp.get_data(as_text=True)[:500])
    return resp.get_data(as_text=True)


def status_of(stream_id: int) -> str:
    return db.session.scalar(text("SELECT status FROM streams WHERE id = :i"), {"i": stream_id})


def streams_of(user_id: int) -> list[tuple]:
    return [tuple(r) for r in db.session.execute(text(
        "SELECT title, type, ticket_price, status FROM streams WHERE creator_id = :u ORDER BY id"), {"u": user_id})]


def assert_escaped_title(html: str) -> None:
    assert "&lt;script&gt;alert(" in html and "&amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert '<script>alert("pwn")' not in html and "<b>bold</b>" not in html


@pytest.fixture()
def live_show(make_creator, make_stream):
    """A creator with a live public stream and a scheduled one (ids only: rows stay with their session)."""
    creator = make_creator(name="Streamer")
    live = make_stream(creator, title="Live now show", live=True)
    scheduled = make_stream(creator, title="Later show")
    return SimpleNamespace(creator=creator, live_id=live.id, live_channel=live.channel,
                           scheduled_id=scheduled.id, scheduled_channel=scheduled.channel)


# ---- /streams/<id> ----------------------------------------------------------------------

def test_public_stream_page_for_anonymous_viewers_connects_the_socket_and_offers_log_in_to_tip(client, live_show):
    s = live_show
    html = page(client, f"/streams/{s.live_id}")
    assert f'ws-connect="/ws/channels/{s.live_channel}"' in html and 'hx-ext="ws"' in html
    assert '<ul id="tip-overlay"' in html
    assert '<ul id="recent-tips"' in html
    login_link = re.search(r'<a class="button primary live-only" href="([^"]+)">Log in to tip</a>', html)
    assert login_link and urlsplit(login_link.group(1)).path == "/login"
    assert parse_qs(urlsplit(login_link.group(1)).query) == {"next": [f"/streams/{s.live_id}"]}
    assert 'data-testid="tip-button"' not in html
    assert "Go live" not in html and "End stream" not in html


def test_public_stream_page_shows_a_tip_button_to_a_logged_in_fan(client, live_show, make_fan, login):
    s = live_show
    login(make_fan())
    html = page(client, f"/streams/{s.live_id}")
    button = re.search(r'<button[^>]*hx-get="([^"]+)"[^>]*data-testid="tip-button">Tip\b', html)
    assert button, html
    assert button.group(1).replace("&amp;", "&") == f"/tips/new?creator={s.creator.id}&stream={s.live_id}"
    assert f'ws-connect="/ws/channels/{s.live_channel}"' in html and 'id="tip-overlay"' in html
    assert "Log in to tip" not in html
    assert "Go live" not in html and "End stream" not in html
    # The button opens the modal for this creator and stream.
    modal = page(client, button.group(1).replace("&amp;", "&"), headers=HTMX)
    assert f'name="streamId" value="{s.live_id}"' in modal


def test_the_creator_sees_go_live_then_end_buttons_and_no_tip_button(client, live_show, login):
    s = live_show
    csrf = login(s.creator)
    html = page(client, f"/streams/{s.scheduled_id}")
    assert f'action="/creator/streams/{s.scheduled_id}/start"' in html and ">Go live<" in html
    assert f'action="/creator/streams/{s.scheduled_id}/end"' not in html
    assert 'data-testid="tip-button"' not in html and "Log in to tip" not in html
    html = page(client, f"/streams/{s.live_id}")
    assert f'action="/creator/streams/{s.live_id}/end"' in html and ">End stream<" in html
    assert f'action="/creator/streams/{s.live_id}/cancel"' in html
    assert ">Go live<" not in html
    # The page's buttons work and come back to the page.
    resp = client.post(f"/creator/streams/{s.scheduled_id}/start",
                       data={"csrf_token": csrf, "next": f"/streams/{s.scheduled_id}"})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == f"/streams/{s.scheduled_id}"
    assert status_of(s.scheduled_id) == "live"
    assert ">End stream<" in page(client, f"/streams/{s.scheduled_id}")


def test_ended_stream_page_has_no_status_buttons(client, live_show, login):
    s = live_show
    streams.change_status(s.creator, s.live_id, "end")
    login(s.creator)
    html = page(client, f"/streams/{s.live_id}")
    assert ">Go live<" not in html and ">End stream<" not in html and ">Cancel<" not in html
    assert "Ended" in html


@pytest.mark.parametrize("action, back, said", [
    ("end", "stream", "This stream has already ended, so it cannot be ended."),
    ("start", "stream", "This stream has already ended, so it cannot be started."),
    ("cancel", "list", "This stream has already ended, so it cannot be canceled."),
])
def test_a_button_on_a_page_older_than_the_streams_status_goes_back_and_says_why(client, live_show, login,
                                                                                  action, back, said):
    """The creator ended the stream on another device; this tab still shows its buttons. Pressing
    one changes nothing and brings them back to where they were (the stream's page, or their
    streams) with the reason, not to an error page."""
    s = live_show
    csrf = login(s.creator)
    streams.change_status(s.creator, s.live_id, "end")
    data = {"csrf_token": csrf, **({"next": f"/streams/{s.live_id}"} if back == "stream" else {})}
    resp = client.post(f"/creator/streams/{s.live_id}/{action}", data=data)
    assert resp.status_code == 303
    went_back = urlsplit(resp.headers["Location"]).path
    assert went_back == (f"/streams/{s.live_id}" if back == "stream" else "/creator/streams")
    assert status_of(s.live_id) == "ended"
    assert f'<div class="alert error">{said}</div>' in page(client, went_back)
    assert said not in page(client, went_back)  # said once


def test_private_stream_shows_the_gate_without_socket_or_channel_to_others(client, new_client, make_creator,
                                                                           make_fan, login, make_stream):
    creator = make_creator()
    private = make_stream(creator, "private", title="Ticketed show", ticket_price=500, live=True)
    channel = private.channel
    anonymous = new_client()
    login(make_fan())
    for viewer in (anonymous, client):
        html = page(viewer, f"/streams/{private.id}")
        assert "Private show" in html and "ticket" in html.lower()
        assert "ws-connect" not in html.replace('ws-connect="/ws/me"', "")
        assert "/ws/channels/" not in html
        assert channel not in html
        assert 'id="tip-overlay"' not in html and 'data-testid="tip-button"' not in html
    owner = new_client()
    from tests.conftest import csrf_from
    token = csrf_from(owner, "/login")
    assert owner.post("/login", data={"email": creator.email, "password": creator.test_password,
                                      "csrf_token": token}).status_code == 303
    html = page(owner, f"/streams/{private.id}")
    assert f'ws-connect="/ws/channels/{channel}"' in html and 'id="tip-overlay"' in html


def test_stream_title_is_escaped_on_its_page(client, make_creator, make_stream):
    creator = make_creator()
    stream = make_stream(creator, title=NASTY_TITLE)
    assert_escaped_title(page(client, f"/streams/{stream.id}"))


@pytest.mark.parametrize("path", ["/streams/99999999999999999999", "/streams/0", "/streams/abc"])
def test_unknown_stream_page_is_404(client, path):
    page(client, path, status=404)


# ---- /creator/streams -------------------------------------------------------------------

@pytest.fixture()
def creator_session(client, make_creator, login):
    creator = make_creator()
    return creator, login(creator)


def test_creator_streams_page_shows_the_form_with_labels(client, creator_session):
    html = page(client, "/creator/streams")
    assert 'id="stream-form"' in html and 'name="csrf_token"' in html
    for field in ("title", "startsAt", "ticketPrice"):
        assert f'<label for="stream-{field}">' in html
    assert "Create stream" in html and "No streams yet" in html


def test_creator_creates_a_stream_with_a_plain_form_and_is_redirected_303(client, creator_session):
    creator, csrf = creator_session
    resp = client.post("/creator/streams", data={"csrf_token": csrf, "title": "Plain form show", "type": "public",
                                                 "ticketPrice": "", "startsAt": ""})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/creator/streams"
    assert streams_of(creator.id) == [("Plain form show", "public", None, "scheduled")]
    html = page(client, "/creator/streams")
    assert "Plain form show" in html and ">Go live<" in html


def test_creator_creates_a_private_stream_with_htmx_and_gets_hx_redirect(client, creator_session):
    creator, csrf = creator_session
    resp = client.post("/creator/streams", headers=HTMX, data={
        "csrf_token": csrf, "title": "VIP night", "type": "private", "ticketPrice": "1,500",
        "startsAt": "2030-12-01T20:00"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["HX-Redirect"] == "/creator/streams"
    assert streams_of(creator.id) == [("VIP night", "private", 1500, "scheduled")]
    starts_at = db.session.scalar(text("SELECT starts_at FROM streams WHERE creator_id = :u"), {"u": creator.id})
    assert starts_at == datetime(2030, 12, 1, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize("data,field", [
    ({"type": "public", "title": "t" * 121}, "title"),
    ({"type": "private", "title": "No price", "ticketPrice": ""}, "ticketPrice"),
    ({"type": "private", "ticketPrice": "0"}, "ticketPrice"),
    ({"type": "private", "ticketPrice": "1.5"}, "ticketPrice"),
    ({"type": "private", "ticketPrice": "abc"}, "ticketPrice"),
    ({"type": "private", "ticketPrice": "\u0663"}, "ticketPrice"),  # Arabic-Indic 3: ASCII digits only
    ({"type": "private", "ticketPrice": "\uff11\uff12"}, "ticketPrice"),  # fullwidth 12
    ({"type": "private", "ticketPrice": "\u00b2"}, "ticketPrice"),  # superscript 2
    ({"type": "private", "ticketPrice": "1000001"}, "ticketPrice"),
    ({"type": "public", "ticketPrice": "100"}, "ticketPrice"),
    ({"type": "public", "startsAt": "next tuesday"}, "startsAt"),
    ({"type": "secret"}, "type"),
])
def test_htmx_create_with_a_bad_field_is_422_with_the_error_inline(client, creator_session, data, field):
    creator, csrf = creator_session
    resp = client.post("/creator/streams", headers=HTMX, data={"csrf_token": csrf, **data})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith("<form") or 'id="stream-form"' in html
    assert "<html" not in html  # the fragment only, swapped in place
    assert 'class="field-error"' in html
    if field != "type":
        assert f'id="stream-{field}-error"' in html and f'aria-describedby="stream-{field}-error"' in html
    assert "HX-Redirect" not in resp.headers
    assert streams_of(creator.id) == []


@pytest.mark.parametrize("title", ["", "   ", None])
def test_the_new_stream_form_asks_for_a_title_and_creates_nothing_without_one(client, creator_session, title):
    """An empty (or blank) form used to create a public stream called "<name> live"; the
    JSON API keeps the title optional (tests/streams/test_streams_api.py)."""
    creator, csrf = creator_session
    data = {"csrf_token": csrf, "type": "public", "ticketPrice": "", "startsAt": ""}
    if title is not None:
        data["title"] = title
    resp = client.post("/creator/streams", headers=HTMX, data=data)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert '<p class="field-error" id="stream-title-error" role="alert">Title is required.</p>' in html
    assert 'aria-invalid="true" aria-describedby="stream-title-error"' in html
    assert streams_of(creator.id) == []


def test_plain_create_with_errors_is_422_page_keeping_the_values(client, creator_session):
    creator, csrf = creator_session
    resp = client.post("/creator/streams", data={"csrf_token": csrf, "title": "<i>Kept</i>", "type": "private",
                                                 "ticketPrice": "zero"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "<html" in html and 'id="stream-ticketPrice-error"' in html
    assert 'value="&lt;i&gt;Kept&lt;/i&gt;"' in html and 'value="zero"' in html
    assert 'value="private" checked' in html
    assert streams_of(creator.id) == []


def test_create_without_csrf_is_refused(client, creator_session):
    creator, _ = creator_session
    resp = client.post("/creator/streams", data={"title": "No token", "type": "public"})
    assert resp.status_code == 400
    assert streams_of(creator.id) == []


def test_fans_get_403_on_creator_streams(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    page(client, "/creator/streams", status=403)
    resp = client.post("/creator/streams", data={"csrf_token": csrf, "title": "Fan show", "type": "public"})
    assert resp.status_code == 403
    assert streams_of(fan.id) == []


def test_logged_out_creator_streams_redirects_to_login(client):
    resp = client.get("/creator/streams")
    assert resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login"


def test_go_live_then_end_buttons_post_with_csrf_and_303_back(client, creator_session, make_stream):
    creator, csrf = creator_session
    stream_id = make_stream(creator, title="Button show").id
    html = page(client, "/creator/streams")
    assert f'action="/creator/streams/{stream_id}/start"' in html
    resp = client.post(f"/creator/streams/{stream_id}/start", data={"csrf_token": csrf})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/creator/streams"
    assert status_of(stream_id) == "live"
    html = page(client, "/creator/streams")
    assert f'action="/creator/streams/{stream_id}/end"' in html
    assert f'action="/creator/streams/{stream_id}/start"' not in html
    resp = client.post(f"/creator/streams/{stream_id}/end", data={"csrf_token": csrf})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/creator/streams"
    assert status_of(stream_id) == "ended"
    html = page(client, "/creator/streams")
    assert f'/creator/streams/{stream_id}/' not in html


def test_cancel_button_cancels(client, creator_session, make_stream):
    creator, csrf = creator_session
    stream_id = make_stream(creator, title="To cancel").id
    resp = client.post(f"/creator/streams/{stream_id}/cancel", data={"csrf_token": csrf})
    assert resp.status_code == 303 and status_of(stream_id) == "canceled"


def test_status_buttons_never_redirect_off_site(client, creator_session, make_stream):
    creator, csrf = creator_session
    stream_id = make_stream(creator, title="Redirects").id
    resp = client.post(f"/creator/streams/{stream_id}/start", data={"csrf_token": csrf,
                                                                     "next": "https://evil.example/"})
    assert resp.status_code == 303 and resp.headers["Location"] in ("/creator/streams",
                                                                     "http://localhost/creator/streams")


def test_status_buttons_need_csrf(client, creator_session, make_stream):
    creator, _ = creator_session
    stream_id = make_stream(creator, title="CSRF").id
    assert client.post(f"/creator/streams/{stream_id}/start").status_code == 400
    assert status_of(stream_id) == "scheduled"


def test_status_buttons_of_another_creators_stream_are_403(client, creator_session, make_stream):
    _, csrf = creator_session
    stream_id = make_stream(title="Not mine").id
    assert client.post(f"/creator/streams/{stream_id}/start", data={"csrf_token": csrf}).status_code == 403
    assert status_of(stream_id) == "scheduled"


def test_illegal_transition_from_the_page_changes_nothing_and_says_why(client, creator_session, make_stream):
    creator, csrf = creator_session
    stream_id = make_stream(creator, title="Not live yet").id
    resp = client.post(f"/creator/streams/{stream_id}/end", data={"csrf_token": csrf})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/creator/streams"
    assert status_of(stream_id) == "scheduled"
    assert ('<div class="alert error">This stream has not started yet, so it cannot be ended.</div>'
            in page(client, "/creator/streams"))


# ---- /creator/settings and the OBS overlay -------------------------------------------------------

_OVERLAY = re.compile(r'id="overlay-url" class="input mono" readonly value="([^"]+)"')


def overlay_url(client) -> str:
    return _OVERLAY.search(page(client, "/creator/settings")).group(1)


def test_settings_shows_a_stable_secret_overlay_url(client, creator_session):
    url = overlay_url(client)
    path = urlsplit(url).path
    assert re.fullmatch(r"/overlay/[A-Za-z0-9_-]{20,64}", path), url
    assert overlay_url(client) == url
    html = page(client, path)
    assert f'ws-connect="/ws/overlay/{path.rsplit("/", 1)[1]}"' in html and 'id="tip-overlay"' in html


def test_regenerate_changes_the_url_and_the_old_one_404s(client, creator_session):
    _, csrf = creator_session
    old = urlsplit(overlay_url(client)).path
    resp = client.post("/creator/settings/overlay/regenerate", data={"csrf_token": csrf})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/creator/settings"
    new = urlsplit(overlay_url(client)).path
    assert new != old
    page(client, old, status=404)
    page(client, new)


def test_regenerate_needs_csrf(client, creator_session):
    old = overlay_url(client)
    assert client.post("/creator/settings/overlay/regenerate").status_code == 400
    assert overlay_url(client) == old


def test_fans_get_403_on_creator_settings(client, make_fan, login):
    csrf = login(make_fan())
    page(client, "/creator/settings", status=403)
    assert client.post("/creator/settings/overlay/regenerate", data={"csrf_token": csrf}).status_code == 403


def test_the_overlay_is_the_one_framable_page(client, new_client, creator_session, live_show):
    """GET /overlay/<secret>: no X-Frame-Options, CSP frame-ancestors *; every other page keeps DENY."""
    path = urlsplit(overlay_url(client)).path
    resp = new_client().get(path)  # OBS has no session
    assert resp.status_code == 200
    assert "X-Frame-Options" not in resp.headers
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp and "frame-ancestors 'none'" not in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    others = ["/", f"/streams/{live_show.live_id}", "/creator/settings", "/creator/streams", "/wallet",
              f"/tips/new?creator={live_show.creator.id}", "/tips/preview?amountTokens=100",
              "/overlay/" + secrets.token_urlsafe(24)]
    for other in others:
        r = client.get(other)
        assert r.headers.get("X-Frame-Options") == "DENY", other
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], other


@pytest.mark.parametrize("secret", [secrets.token_urlsafe(24), "short", "x" * 65, "a" * 32])
def test_a_wrong_overlay_secret_is_404(client, secret):
    resp = client.get(f"/overlay/{secret}")
    assert resp.status_code == 404
    assert resp.headers.get("X-Frame-Options") == "DENY"


def test_an_overlay_secret_with_a_nul_byte_is_400_invalid_text_not_a_database_error(client, creator_session):
    """`%00` in the path once reached PostgreSQL (psycopg.DataError: a 500)."""
    path = urlsplit(overlay_url(client)).path
    for bad in (path + "%00", path[:-1] + "%00", "/overlay/%00"):
        resp = client.get(bad)
        assert resp.status_code == 400, (bad, resp.status_code)
        assert "NUL byte" in resp.get_data(as_text=True)


# ---- Discover -----------------------------------------------------------------------------------

def test_discover_lists_live_and_scheduled_streams_with_titles_escaped(client, make_creator, make_stream):
    creator = make_creator(name="Discoverable")
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    live = make_stream(creator, title=NASTY_TITLE, live=True)
    scheduled = make_stream(creator, "private", title="Soon: " + NASTY_TITLE, ticket_price=250, starts_at=soon)
    ended = make_stream(creator, title="Over already", live=True)
    streams.change_status(creator, ended.id, "end")
    canceled = make_stream(creator, title="Called off", starts_at=soon)
    streams.change_status(creator, canceled.id, "cancel")
    html = page(client, "/")
    assert f'href="/streams/{live.id}"' in html and f'href="/streams/{scheduled.id}"' in html
    assert f'href="/streams/{ended.id}"' not in html and f'href="/streams/{canceled.id}"' not in html
    assert_escaped_title(html)
    assert "Private · 250 tokens" in html
    assert "Discoverable" in html
    assert live.channel not in html and scheduled.channel not in html


def test_discover_keeps_starting_soon_shows_out_of_live_now(client, make_creator, make_stream):
    creator = make_creator()
    live = make_stream(creator, title="On air", live=True)
    soon = make_stream(creator, "private", title="Later tonight", ticket_price=40,
                       starts_at=(datetime.now(UTC) + timedelta(hours=2)).isoformat())
    html = page(client, "/")
    live_now = re.search(r'data-testid="live-now">(.*?)</ul>', html, re.S).group(1)
    starting = re.search(r'<h2 id="upcoming-heading">Starting soon</h2>.*?data-testid="starting-soon">(.*?)</ul>',
                         html, re.S).group(1)
    assert f'href="/streams/{live.id}"' in live_now and f'href="/streams/{soon.id}"' not in live_now
    assert f'href="/streams/{soon.id}"' in starting and f'href="/streams/{live.id}"' not in starting
    assert "UTC</time>" in starting
    streams.change_status(creator, live.id, "end")
    streams.change_status(creator, soon.id, "cancel")  # leave Discover as we found it for other tests


def test_discover_lists_live_streams_first_even_among_many_scheduled(client, make_creator, make_stream):
    """Discover is "live streams" first: a crowd of scheduled shows must not push a live one off the page."""
    creator = make_creator()
    later = "2031-01-01T00:00:00Z"
    crowd = [make_stream(creator, title=f"Someday {i}", starts_at=later).id for i in range(51)]
    live = make_stream(creator, title="On air right now", live=True)
    try:
        html = page(client, "/")
        assert f'href="/streams/{live.id}"' in html
        first_link = re.search(r'href="/streams/(\d+)"', html).group(1)
        assert status_of(int(first_link)) == "live"
    finally:  # leave Discover as we found it for other tests
        for stream_id in crowd + [live.id]:
            streams.change_status(creator, stream_id, "cancel")
