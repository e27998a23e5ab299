"""Server-rendered pages of private shows and the media server: the ticket gate on
/streams/<id>, its htmx checkout, the HLS player, /creator/streams figures and OBS
settings, and the stream key on /creator/settings."""
from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from app.extensions import db
from app.streams import media, tickets
from app.streams import service as streams
from app.wallet.service import wallet_balance
from tests.conftest import csrf_from, fresh_client
from tests.helpers import log_in

HTMX = {"HX-Request": "true"}
HLS_BASE = "http://media.test:8888"
INGEST = "rtmp://media.test:1935"
HOSTILE = "<script>alert(1)</script>"
PRICE = 1500


# ---- helpers ----------------------------------------------------------------

def page(client, path, status=200, **kw) -> str:
    resp = client.get(path, **kw)
    assert resp.status_code == status, (path, resp.status_code, resp.get_data(as_text=True)[:500])
    return resp.get_data(as_text=True)


def balance_of(user) -> int:
    db.session.rollback()  # a fresh snapshot: the app committed in its own session
    return wallet_balance(user)


def tickets_of(stream_id: int) -> list[tuple]:
    return [tuple(r) for r in db.session.execute(text(
        "SELECT fan_id, price, status FROM tickets WHERE stream_id = :s ORDER BY id"), {"s": stream_id})]


def ticket_transfers(stream_id: int, fan_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = :k"),
                             {"k": f"ticket:{stream_id}:{fan_id}"})


def without_own_feed(html: str) -> str:
    """The page minus the logged-in user's own socket (base.html), which every page has."""
    return html.replace('ws-connect="/ws/me"', "")


def figures_text(html: str, stream_id: int) -> str:
    m = re.search(rf'data-testid="show-figures-{stream_id}">(.*?)</span>', html, re.S)
    assert m, html
    return " ".join(m.group(1).split())


def buy(client, stream_id: int, csrf: str | None, htmx: bool = True):
    headers = dict(HTMX) if htmx else {}
    if csrf:
        headers["X-CSRFToken"] = csrf
    return client.post(f"/streams/{stream_id}/ticket", headers=headers)


def assert_gate(html: str) -> None:
    assert 'data-testid="ticket-gate"' in html
    assert "ws-connect" not in without_own_feed(html) and "/ws/channels/" not in html
    assert 'id="recent-tips"' not in html and "Recent tips" not in html
    assert 'id="tip-overlay"' not in html
    assert "<video" not in html and "index.m3u8" not in html and "playback-token" not in html


def assert_show(html: str, channel: str) -> None:
    assert f'ws-connect="/ws/channels/{channel}"' in html
    assert 'data-testid="ticket-gate"' not in html and 'data-testid="buy-ticket"' not in html
    assert 'id="tip-overlay"' in html and 'id="recent-tips"' in html


@pytest.fixture()
def show(make_creator, make_stream):
    """A scheduled private show at 1,500 tokens (ids and plain values only)."""
    creator = make_creator(name="Show Host")
    s = make_stream(creator, "private", title="Members night", ticket_price=PRICE)
    return SimpleNamespace(creator=creator, id=s.id, channel=s.channel)


# ---- /streams/<id>: the gate ---------------------------------------------------------------

@pytest.mark.parametrize("live", [False, True])
def test_logged_out_visitors_see_the_gate_with_the_price_and_a_login_link(client, show, live):
    if live:
        streams.change_status(show.creator, show.id, "start")
    html = page(client, f"/streams/{show.id}")
    assert_gate(html)
    assert f"A ticket costs <strong>{PRICE:,} tokens</strong>" in html
    link = re.search(r'<a class="button primary" href="([^"]+)">Log in to buy a ticket</a>', html)
    assert link, html
    assert urlsplit(link.group(1)).path == "/login"
    assert parse_qs(urlsplit(link.group(1)).query) == {"next": [f"/streams/{show.id}"]}
    assert 'data-testid="buy-ticket"' not in html and "Your balance" not in html
    assert show.channel not in html


def test_a_fan_without_a_ticket_sees_the_buy_form_and_their_balance(client, login, show, make_fan):
    fan = make_fan(balance=2345)
    csrf = login(fan)
    html = page(client, f"/streams/{show.id}")
    assert_gate(html)
    form = re.search(r'<form method="post" action="([^"]+)"\s+hx-post="([^"]+)"[^>]*>(.*?)</form>', html, re.S)
    assert form, html
    assert form.group(1) == form.group(2) == f"/streams/{show.id}/ticket"
    assert f'name="csrf_token" value="{csrf}"' in form.group(3)
    assert f"Buy ticket · {PRICE:,} tokens" in form.group(3)
    assert '<strong data-testid="gate-balance">2,345</strong> tokens' in form.group(3)
    assert "Log in to buy a ticket" not in html
    assert 'data-testid="gate-error"' not in html
    assert show.channel not in html


def test_the_creator_sees_the_show_not_the_gate(client, login, show):
    login(show.creator)
    html = page(client, f"/streams/{show.id}")
    assert_show(html, show.channel)
    assert 'data-testid="ticket-held"' not in html


def test_a_ticket_holder_sees_the_show_not_the_gate(client, login, show, make_fan):
    fan = make_fan(balance=PRICE)
    tickets.checkout(fan, db.session.get(streams.Stream, show.id))
    login(fan)
    html = page(client, f"/streams/{show.id}")
    assert_show(html, show.channel)
    assert 'data-testid="ticket-held"' in html
    assert 'data-testid="tip-button"' in html


# ---- POST /streams/<id>/ticket ----------------------------------------------------------------

def test_htmx_checkout_swaps_in_the_show_and_the_nav_balance(client, login, show, make_fan):
    fan = make_fan(balance=2000)
    csrf = login(fan)
    resp = buy(client, show.id, csrf)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "<html" not in html and "<body" not in html  # the #show fragment only
    assert_show(html, show.channel)
    assert 'data-testid="ticket-held"' in html
    assert f'<span id="nav-balance" hx-swap-oob="true">{2000 - PRICE:,}</span>' in html
    assert tickets_of(show.id) == [(fan.id, PRICE, "valid")]
    assert balance_of(fan) == 2000 - PRICE


def test_htmx_checkout_with_too_few_tokens_is_402_with_the_shortfall_and_a_topup_link(client, login, show,
                                                                                       make_fan):
    fan = make_fan(balance=200)
    csrf = login(fan)
    resp = buy(client, show.id, csrf)
    assert resp.status_code == 402, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert "<html" not in html
    assert_gate(html)
    error = re.search(r'data-testid="gate-error">(.*?)</p>', html, re.S)
    assert error, html
    assert "1,300" in error.group(1)
    link = re.search(r'<a href="([^"]+)" hx-get="([^"]+)" hx-target="#ticket-topup" data-testid="topup-link">'
                     r'Buy 1,300 tokens</a>', html)
    assert link, html
    assert urlsplit(link.group(1)).path == "/wallet" and parse_qs(urlsplit(link.group(1)).query) == {
        "topup": ["1300"]}
    assert urlsplit(link.group(2)).path == "/wallet/buy" and parse_qs(urlsplit(link.group(2)).query) == {
        "amount": ["1300"]}
    assert 'id="ticket-topup"' in html
    assert '<strong data-testid="gate-balance">200</strong>' in html
    assert "nav-balance" not in html
    assert tickets_of(show.id) == [] and balance_of(fan) == 200
    # The link opens the buy sheet prefilled with the shortfall.
    sheet = page(client, link.group(2), headers=HTMX)
    assert 'value="1300"' in sheet


def test_plain_form_checkout_redirects_303_to_the_stream_page(client, login, show, make_fan):
    fan = make_fan(balance=PRICE)
    csrf = login(fan)
    resp = client.post(f"/streams/{show.id}/ticket", data={"csrf_token": csrf})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert urlsplit(resp.headers["Location"]).path == f"/streams/{show.id}"
    assert tickets_of(show.id) == [(fan.id, PRICE, "valid")] and balance_of(fan) == 0
    assert_show(page(client, f"/streams/{show.id}"), show.channel)


def test_buying_again_is_200_and_charges_once(client, login, show, make_fan):
    fan = make_fan(balance=5000)
    csrf = login(fan)
    assert buy(client, show.id, csrf).status_code == 200
    again = buy(client, show.id, csrf)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert_show(again.get_data(as_text=True), show.channel)
    assert f'hx-swap-oob="true">{5000 - PRICE:,}</span>' in again.get_data(as_text=True)
    plain = client.post(f"/streams/{show.id}/ticket", data={"csrf_token": csrf})
    assert plain.status_code == 303
    assert tickets_of(show.id) == [(fan.id, PRICE, "valid")]
    assert ticket_transfers(show.id, fan.id) == 1
    assert balance_of(fan) == 5000 - PRICE


def test_the_creator_buying_their_own_show_gets_403_in_the_pages_alert_area(client, login, show):
    """The creator sees the show, not a gate (there is no Buy button for them): a crafted
    request's refusal goes to the page's alert area instead of re-rendering the show."""
    csrf = login(show.creator)
    resp = buy(client, show.id, csrf)
    assert resp.status_code == 403, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    assert resp.headers.get("HX-Retarget") == "#flash" and resp.headers.get("HX-Reswap") == "innerHTML"
    assert "own show" in html
    assert tickets_of(show.id) == []


def test_the_creator_buying_their_own_show_without_htmx_gets_the_403_page(client, login, show):
    csrf = login(show.creator)
    resp = client.post(f"/streams/{show.id}/ticket", data={"csrf_token": csrf})
    assert resp.status_code == 403
    assert "own show" in resp.get_data(as_text=True)
    assert tickets_of(show.id) == []


@pytest.mark.parametrize("htmx", [True, False])
def test_checkout_without_csrf_is_refused_and_writes_nothing(client, login, show, make_fan, htmx):
    fan = make_fan(balance=2000)
    login(fan)
    resp = buy(client, show.id, None, htmx=htmx)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    forged = buy(client, show.id, "not-a-token", htmx=htmx)
    assert forged.status_code == 400
    assert tickets_of(show.id) == [] and ticket_transfers(show.id, fan.id) == 0
    assert balance_of(fan) == 2000


def test_checkout_logged_out_goes_to_login_and_writes_nothing(client, show):
    resp = client.post(f"/streams/{show.id}/ticket")
    assert resp.status_code in (302, 400, 401)
    assert tickets_of(show.id) == []


# ---- the HLS player (MEDIA_HLS_BASE_URL) --------------------------------------------------------

@pytest.fixture()
def media_app(make_app):
    return make_app(MEDIA_HLS_BASE_URL=HLS_BASE)


def video_of(html: str) -> re.Match | None:
    return re.search(r'<video class="player-video" data-hls-src="([^"]+)" data-token-url="([^"]+)"', html)


def test_a_live_public_stream_has_the_player_and_the_csp_lets_it_reach_the_media_server(media_app, make_creator,
                                                                                         make_stream):
    creator = make_creator()
    s = make_stream(creator, title="On air", live=True)
    media.set_broadcasting(s, True)
    resp = fresh_client(media_app).get(f"/streams/{s.id}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    video = video_of(html)
    assert video, html
    assert video.group(1) == f"{HLS_BASE}/stream/{s.id}/index.m3u8"
    assert video.group(2) == f"/streams/{s.id}/playback-token"
    csp = dict(part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";"))
    assert HLS_BASE in csp["connect-src"].split()
    assert HLS_BASE in csp["media-src"].split()
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    # The page never carries a token itself: the player fetches its own.
    assert media.playback_token(None, s)[:20] not in html


def test_the_player_appears_only_while_live_and_on_air(media_app, make_creator, make_stream):
    creator = make_creator()
    s = make_stream(creator, title="Soon")
    browser = fresh_client(media_app)
    media.set_broadcasting(s, True)  # the creator's encoder may connect before the show starts
    html = page(browser, f"/streams/{s.id}")
    assert video_of(html) is None and f"Waiting for {creator.display_name} to go live" in html
    streams.change_status(creator, s.id, "start")
    assert video_of(page(browser, f"/streams/{s.id}"))
    media.set_broadcasting(s, False)
    html = page(browser, f"/streams/{s.id}")
    assert video_of(html) is None and "index.m3u8" not in html
    assert "The creator is offline right now" in html and 'data-key="live-off-air"' in html
    media.set_broadcasting(s, True)
    assert 'data-key="live-on-air"' in page(browser, f"/streams/{s.id}")
    streams.change_status(creator, s.id, "end")
    html = page(browser, f"/streams/{s.id}")
    assert video_of(html) is None and "index.m3u8" not in html and "This stream has ended." in html


def test_a_private_show_has_the_player_for_holders_and_the_creator_only(media_app, show, make_fan):
    holder = make_fan(balance=PRICE)
    tickets.checkout(holder, db.session.get(streams.Stream, show.id))
    streams.change_status(show.creator, show.id, "start")
    media.set_broadcasting(db.session.get(streams.Stream, show.id), True)
    hls = f"{HLS_BASE}/stream/{show.id}/index.m3u8"
    for viewer in (holder, show.creator):
        browser = fresh_client(media_app)
        log_in(browser, viewer)
        video = video_of(page(browser, f"/streams/{show.id}"))
        assert video and video.group(1) == hls
    # Without a ticket (logged in or not): the gate, no player, no media URL at all.
    stranger = fresh_client(media_app)
    log_in(stranger, make_fan(balance=5))
    for browser in (stranger, fresh_client(media_app)):
        html = page(browser, f"/streams/{show.id}")
        assert_gate(html)
        assert HLS_BASE not in html and "media.test" not in html and f"/stream/{show.id}/" not in html


def test_without_a_media_server_the_live_page_says_so_and_has_no_player(client, make_creator, make_stream):
    creator = make_creator()
    s = make_stream(creator, title="No MediaMTX", live=True)
    html = page(client, f"/streams/{s.id}")
    assert video_of(html) is None and "index.m3u8" not in html
    assert "Video appears here once the operator connects a media server" in html


# ---- /creator/streams -----------------------------------------------------------------------------

def test_creator_streams_shows_tickets_sold_escrow_then_revenue(client, login, show, make_fan):
    stream = db.session.get(streams.Stream, show.id)
    login(show.creator)
    assert figures_text(page(client, "/creator/streams"), show.id) == "0 tickets sold · 0 tokens in escrow"
    tickets.checkout(make_fan(balance=PRICE), stream)
    assert figures_text(page(client, "/creator/streams"), show.id) == f"1 ticket sold · {PRICE:,} tokens in escrow"
    tickets.checkout(make_fan(balance=PRICE), stream)
    assert figures_text(page(client, "/creator/streams"), show.id) == \
        f"2 tickets sold · {2 * PRICE:,} tokens in escrow"
    streams.change_status(show.creator, show.id, "start")
    assert figures_text(page(client, "/creator/streams"), show.id) == \
        f"2 tickets sold · {2 * PRICE:,} tokens in escrow"
    streams.change_status(show.creator, show.id, "end")
    html = page(client, "/creator/streams")
    # 80% of 3,000 to the creator.
    assert figures_text(html, show.id) == "2 tickets sold · revenue 2,400 tokens (of 3,000)"
    assert "in escrow" not in figures_text(html, show.id)


def test_creator_streams_shows_a_canceled_shows_refunds(client, login, show, make_fan):
    stream = db.session.get(streams.Stream, show.id)
    for _ in range(3):
        tickets.checkout(make_fan(balance=PRICE), stream)
    login(show.creator)
    streams.change_status(show.creator, show.id, "cancel")
    assert figures_text(page(client, "/creator/streams"), show.id) == "3 tickets sold · refunding…"
    assert tickets.refund_show(show.id) == 3
    html = page(client, "/creator/streams")
    assert figures_text(html, show.id) == "0 tickets sold · 3 refunded"
    assert "revenue" not in figures_text(html, show.id)


def test_public_streams_have_no_ticket_figures(client, login, make_creator, make_stream):
    creator = make_creator()
    s = make_stream(creator, title="Free")
    login(creator)
    assert f'data-testid="show-figures-{s.id}"' not in page(client, "/creator/streams")


def test_creator_streams_shows_obs_settings_when_an_ingest_url_is_set(make_app, show, make_creator, make_stream):
    ingest_app = make_app(MEDIA_INGEST_URL=INGEST + "/")
    creator = show.creator
    ended = make_stream(creator, title="Done", live=True)
    streams.change_status(creator, ended.id, "end")
    browser = fresh_client(ingest_app)
    log_in(browser, creator)
    html = page(browser, "/creator/streams")
    key = db.session.scalar(text("SELECT stream_key FROM users WHERE id = :u"), {"u": creator.id})
    assert key and key.startswith("sk_")
    # Each in its own labelled field with a Copy button; the key masked until "Show".
    assert (f'<label for="obs-server-{show.id}">Server</label>' in html
            and f'id="obs-server-{show.id}" class="input mono" readonly value="{INGEST}/stream"' in html)
    assert (f'<label for="obs-key-{show.id}">Stream Key</label>' in html
            and f'id="obs-key-{show.id}" class="input mono" readonly value="{show.id}?token={key}"' in html)
    assert re.search(rf'value="{show.id}\?token={key}"[^>]*\stype="password"', html)
    assert f'data-reveal="obs-key-{show.id}"' in html and f'data-copy="obs-key-{show.id}"' in html
    assert f'data-copy="obs-server-{show.id}"' in html
    assert f"{ended.id}?token=" not in html  # nothing to broadcast to an ended stream
    # The key shown is the one the media server accepts (OBS: <server>/<stream key>).
    media_server = fresh_client(ingest_app)
    resp = media_server.post("/media/auth", json={"action": "publish", "path": f"stream/{show.id}",
                                                  "query": f"token={key}", "user": "", "password": "",
                                                  "token": "", "ip": "203.0.113.7", "protocol": "rtmp",
                                                  "id": None})
    assert resp.status_code == 200


def test_creator_streams_has_no_obs_settings_without_an_ingest_url(client, login, show):
    login(show.creator)
    html = page(client, "/creator/streams")
    assert "OBS settings" not in html and "?token=" not in html


# ---- /creator/settings: the stream key ---------------------------------------------------------------

_KEY = re.compile(r'value="([^"]*)" data-testid="stream-key"')


def shown_key(client) -> str:
    m = _KEY.search(page(client, "/creator/settings"))
    assert m
    return m.group(1)


def test_settings_shows_a_stable_stream_key_and_regenerate_replaces_it(client, login, make_creator):
    creator = make_creator()
    csrf = login(creator)
    key = shown_key(client)
    assert re.fullmatch(r"sk_[A-Za-z0-9_-]{30,}", key), key
    assert shown_key(client) == key
    resp = client.post("/creator/settings/stream-key/regenerate", data={"csrf_token": csrf})
    assert resp.status_code == 303 and urlsplit(resp.headers["Location"]).path == "/creator/settings"
    new = shown_key(client)
    assert new != key and new.startswith("sk_")
    assert db.session.scalar(text("SELECT stream_key FROM users WHERE id = :u"), {"u": creator.id}) == new


def test_regenerating_the_stream_key_needs_csrf(client, login, make_creator):
    login(make_creator())
    key = shown_key(client)
    assert client.post("/creator/settings/stream-key/regenerate").status_code == 400
    assert shown_key(client) == key


def test_fans_get_403_on_regenerating_a_stream_key(client, login, make_fan):
    fan = make_fan()
    csrf = login(fan)
    assert client.post("/creator/settings/stream-key/regenerate", data={"csrf_token": csrf}).status_code == 403
    assert db.session.scalar(text("SELECT stream_key FROM users WHERE id = :u"), {"u": fan.id}) is None


def test_logged_out_regenerate_does_nothing(client):
    resp = client.post("/creator/settings/stream-key/regenerate")
    assert resp.status_code in (302, 400)


# ---- hostile titles ----------------------------------------------------------------------------------

def assert_escaped(html: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in html


def test_a_hostile_title_is_escaped_on_the_gate_and_the_creator_list(client, new_client, login, make_creator,
                                                                     make_fan, make_app, make_stream):
    creator = make_creator()
    s = make_stream(creator, "private", title=HOSTILE, ticket_price=100)
    assert_escaped(page(new_client(), f"/streams/{s.id}"))  # logged out: the gate
    fan_browser = new_client()
    log_in(fan_browser, make_fan(balance=10))
    html = page(fan_browser, f"/streams/{s.id}")  # logged in, no ticket: the buy form
    assert 'data-testid="buy-ticket"' in html
    assert_escaped(html)
    # The 402 fragment carries the title too.
    resp = fan_browser.post(f"/streams/{s.id}/ticket",
                            headers={**HTMX, "X-CSRFToken": csrf_from(fan_browser, "/wallet")})
    assert resp.status_code == 402
    assert_escaped(resp.get_data(as_text=True))
    login(creator)
    assert_escaped(page(client, "/creator/streams"))
    # With OBS settings shown as well.
    browser = fresh_client(make_app(MEDIA_INGEST_URL=INGEST))
    log_in(browser, creator)
    html = page(browser, "/creator/streams")
    assert "OBS settings" in html
    assert_escaped(html)


@pytest.fixture(autouse=True)
def _leave_streams_as_found(leave_streams_as_found):
    """Every test here leaves no open stream behind (see tests/streams/conftest.py)."""


# ---- an ended show is no dead end (issue 17) ------------------------------------------------

_NEXT = re.compile(r'<section class="card next-steps-card ended-only" data-testid="next-steps"[^>]*>(.*?)</section>', re.S)


@pytest.mark.parametrize("action", ["end", "cancel"])
def test_an_ended_or_canceled_show_offers_the_creator_page_and_discover(client, make_fan, make_creator, make_stream,
                                                                        action):
    creator = make_creator(name=HOSTILE)
    stream = make_stream(creator, live=True)
    streams.change_status(creator, stream.id, action)
    log_in(client, make_fan(balance=100))
    html = page(client, f"/streams/{stream.id}")
    steps = _NEXT.search(html).group(1)
    assert f'href="/c/{creator.handle}">More from &lt;script&gt;alert(1)&lt;/script&gt;</a>' in steps
    assert '<a class="button" href="/">Discover more live streams</a>' in steps
    # The Tip button and the viewer count are marked to go with the status (app.css, .live-only).
    assert re.search(r'class="button primary live-only"[^>]*data-testid="tip-button"', html)
    assert '<span class="live-only"> · <span id="viewer-count">' in html


def test_a_live_show_has_its_next_steps_waiting_for_the_end(client, make_fan, make_creator, make_stream):
    """The same partial is on the page from the start (hidden by app.css while the status pill
    says live): the status pushed over the socket is all it takes to show it."""
    creator = make_creator()
    stream = make_stream(creator, live=True)
    log_in(client, make_fan(balance=100))
    html = page(client, f"/streams/{stream.id}")
    assert _NEXT.search(html) and 'class="status-pill status-live"' in html
