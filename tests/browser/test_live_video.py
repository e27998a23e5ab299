"""Live video in a real browser (DESIGN.md §14): Debian's Chromium plays, through
hls.js, what ffmpeg publishes to Debian's nginx-rtmp, behind the app's gate
(tests/media_stack.py: nothing stubbed). "Plays" means the <video>'s
currentTime advances by at least 2 s; "stops" means it no longer does and
the page says why.

Playback tokens live PLAYBACK_TTL (8 s) here; the player renews them at half
life, and nginx caches a yes for as long: "within one token lifetime" is what
every stop is held to.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from app.auth.models import User
from app.extensions import db
from app.streams import media
from app.streams import service as streams
from app.streams.models import Stream
from tests.browser.pages import DESKTOP, Page, axe_violations, fresh_pages, logged_in_pages
from tests.browser.test_tips_live import WS_PROBE, log_in, wait_listening
from tests.media_stack import PLAYBACK_TTL
from tests.streams.test_live_video import refund_one_ticket, show  # noqa: F401 (show: a fixture)

TIMEOUT = 10_000  # ms: the first segments take a couple of seconds to be cut
PHONE = {"width": 390, "height": 844}
PLAYS = 2.0  # s of currentTime that prove the video plays
# Chromium logs every refused or aborted media request; tests that provoke them allow these.
REFUSED = r"status of 403 \((Forbidden|FORBIDDEN)\)"  # nginx's reason phrase, or the app's
NETWORK_FAILED = r"net::ERR_FAILED|net::ERR_ABORTED|net::ERR_INTERNET_DISCONNECTED"


@pytest.fixture()
def open_page(browser, on_air):
    yield from logged_in_pages(browser, on_air.base, TIMEOUT, WS_PROBE, log_in)


@pytest.fixture()
def open_anonymous(browser, on_air):
    yield from fresh_pages(browser, on_air.base, TIMEOUT, WS_PROBE)


def publish(stack, stream_id: int, key: str):
    """Start the encoder and wait until its first segments are cut, as a viewer
    arriving mid-show finds it (the first seconds, "Waiting for the stream…",
    are test_offline_then_on_air_then_offline_without_reloading's)."""
    encoder = stack.publish(stream_id, key)
    stream = db.session.get(Stream, stream_id)
    stack.wait_for_segments(stream_id, media.playback_token(db.session.get(User, stream.creator_id), stream))
    return encoder


def current_time(p: Page) -> float:
    return p.page.evaluate("() => { const v = document.querySelector('video.player-video'); "
                           "return v ? v.currentTime : -1; }")


def assert_plays(p: Page, seconds: float = PLAYS, timeout: float = 30) -> float:
    """Wait until the video's currentTime has advanced by `seconds` from when it started playing."""
    p.page.wait_for_function("() => { const v = document.querySelector('video.player-video'); "
                             "return v && v.currentTime > 0; }", timeout=timeout * 1000)
    start = current_time(p)
    p.page.wait_for_function("(start) => document.querySelector('video.player-video').currentTime >= start",
                             arg=start + seconds, timeout=timeout * 1000)
    return current_time(p)


def bearer_tokens(p: Page, hls_base: str) -> set[str]:
    """Start recording the playback tokens the page sends to the media server."""
    seen: set[str] = set()

    def _record(request):
        if request.url.startswith(hls_base) and request.method == "GET":
            auth = request.headers.get("authorization", "")
            if auth.startswith("Bearer "):
                seen.add(auth[7:])
    p.page.on("request", _record)
    return seen


def status_line(p: Page):
    return p.page.locator("[data-player-status]")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_ticket_holder_watches_the_show_across_token_renewals(open_page, on_air, show, viewport):
    publish(on_air, show.id, show.key)
    holder_page = open_page(show.holder, f"/streams/{show.id}", viewport)
    tokens = bearer_tokens(holder_page, on_air.media.hls_base_url)
    page = holder_page.page
    # Muted autoplay, with the way to sound up front.
    assert_plays(holder_page)
    expect(status_line(holder_page)).to_be_hidden()
    unmute = page.get_by_role("button", name="Tap to unmute")
    expect(unmute).to_be_visible()
    assert page.evaluate("document.querySelector('video.player-video').muted") is True
    # Past more than one token lifetime the video plays on, on renewed tokens.
    before = current_time(holder_page)
    time.sleep(PLAYBACK_TTL + 2)
    assert current_time(holder_page) >= before + PLAYBACK_TTL - 1
    assert len(tokens) >= 2, f"the player never renewed its token (saw {len(tokens)})"
    unmute.click()
    expect(unmute).to_be_hidden()
    assert page.evaluate("document.querySelector('video.player-video').muted") is False
    page.screenshot(path=f"/tmp/live-video-{'phone' if viewport is PHONE else 'desktop'}.png")
    serious = [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]
    assert serious == [], serious
    holder_page.assert_clean()


def test_a_fan_without_a_ticket_gets_the_gate_and_no_video_not_even_from_copied_segment_urls(
        open_page, on_air, show, make_fan):
    publish(on_air, show.id, show.key)
    holder_page = open_page(show.holder, f"/streams/{show.id}")
    segment_urls: list[str] = []
    holder_page.page.on("request", lambda r: segment_urls.append(r.url) if r.url.endswith(".ts") else None)
    assert_plays(holder_page)
    assert segment_urls, "the holder's player fetched no segment"

    stranger_page = open_page(make_fan(balance=1000), f"/streams/{show.id}")
    page = stranger_page.page
    expect(page.get_by_test_id("ticket-gate")).to_be_visible()
    assert page.locator("video").count() == 0
    html = page.content()
    assert on_air.media.hls_base_url not in html and "index.m3u8" not in html
    # The segment and playlist URLs, copied out of the holder's page, fetched from the stranger's.
    copied = [segment_urls[-1], re.sub(r"[^/]+\.ts$", "index.m3u8", segment_urls[-1])]
    statuses = page.evaluate("async (urls) => Promise.all(urls.map(async (u) => (await fetch(u)).status))", copied)
    assert statuses == [403, 403]
    stranger_page.assert_clean(allowed=(REFUSED,))


def test_a_visitor_who_is_not_logged_in_watches_a_public_stream(open_anonymous, on_air, make_creator, make_stream):
    creator = make_creator()
    stream = make_stream(creator, title="Open air", live=True)
    publish(on_air, stream.id, media.stream_key(creator))
    visitor = open_anonymous(PHONE)
    visitor.page.goto(f"/streams/{stream.id}")
    assert_plays(visitor)
    expect(visitor.page.get_by_role("link", name="Log in to tip")).to_be_visible()
    visitor.assert_clean()


def test_offline_then_on_air_then_offline_without_reloading(open_page, on_air, show):
    holder_page = open_page(show.holder, f"/streams/{show.id}")
    page = holder_page.page
    wait_listening(holder_page, on_air.app.extensions["realtime_hub"], ".player")
    expect(page.locator(".player-placeholder")).to_have_text(re.compile(r"The creator is offline right now"))
    encoder = on_air.publish(show.id, show.key)
    # The encoder connects: the player appears by itself (pushed) and plays.
    assert_plays(holder_page)
    encoder.kill()
    encoder.wait()
    # It leaves: on_publish_done, pushed to the page.
    expect(page.locator(".player-placeholder")).to_have_text(re.compile(r"The creator is offline right now"))
    assert page.locator("video").count() == 0
    holder_page.assert_clean(allowed=(REFUSED, NETWORK_FAILED, r"status of 404"))


def test_the_player_recovers_after_a_network_blip(open_page, on_air, show):
    publish(on_air, show.id, show.key)
    holder_page = open_page(show.holder, f"/streams/{show.id}")
    page = holder_page.page
    assert_plays(holder_page)
    pattern = f"{on_air.media.hls_base_url}/**"
    page.route(pattern, lambda route: route.abort("internetdisconnected"))
    # hls.js's own retries run out: the player says it is reconnecting.
    expect(status_line(holder_page)).to_be_visible(timeout=30_000)
    expect(status_line(holder_page)).to_contain_text(re.compile("Reconnecting|Loading"))
    stalled = current_time(holder_page)
    page.unroute(pattern)
    # Back on the network, it plays again by itself.
    page.wait_for_function("(t) => document.querySelector('video.player-video').currentTime > t + 2",
                           arg=stalled, timeout=30_000)
    expect(status_line(holder_page)).to_be_hidden()
    holder_page.assert_clean(allowed=(NETWORK_FAILED,))


def test_waiting_for_the_stream_until_the_media_server_has_a_playlist(open_page, on_air, show):
    """The encoder is on air but no playlist is cut yet (nginx answers 404): the player
    says so and asks again by itself. The 404s are made here, for 3 s, so the state is
    seen every time (with a real encoder it lasts about a second)."""
    publish(on_air, show.id, show.key)
    playlist = f"{on_air.media.hls_base_url}/stream/{show.id}/index.m3u8"
    holder_page = open_page(show.holder, "/wallet")
    page = holder_page.page
    page.route(playlist, lambda route: route.fulfill(status=404, body="", headers={
        "Access-Control-Allow-Origin": on_air.base, "Content-Type": "text/plain"}))
    page.goto(f"/streams/{show.id}")
    expect(status_line(holder_page)).to_contain_text("Waiting for the stream…")
    time.sleep(3)
    page.unroute(playlist)
    assert_plays(holder_page)
    expect(status_line(holder_page)).to_be_hidden()
    holder_page.assert_clean(allowed=(r"status of 404",))


@pytest.mark.parametrize("action, says", [("end", "This stream has ended."), ("cancel", "This stream was canceled.")])
def test_ending_or_canceling_the_show_stops_the_video_for_everyone(open_page, on_air, show, action, says):
    publish(on_air, show.id, show.key)
    holder_page = open_page(show.holder, f"/streams/{show.id}")
    assert_plays(holder_page)
    streams.change_status(show.creator, show.id, action)
    expect(holder_page.page.locator(".player-placeholder")).to_have_text(says, timeout=PLAYBACK_TTL * 1000)
    assert holder_page.page.locator("video").count() == 0
    holder_page.assert_clean(allowed=(REFUSED, NETWORK_FAILED))


def test_a_refunded_fan_loses_the_video_within_one_token_lifetime(open_page, on_air, show):
    """No page push tells a refunded fan (the show goes on for the others): the media
    server's 403 and the app refusing a new token stop the player, and it says why."""
    publish(on_air, show.id, show.key)
    holder_page = open_page(show.holder, f"/streams/{show.id}")
    assert_plays(holder_page)
    refund_one_ticket(show.id, show.holder.id)
    refunded_at = time.monotonic()
    expect(status_line(holder_page)).to_contain_text("The video stopped. You don't have access to this stream.",
                                                     timeout=PLAYBACK_TTL * 1000)
    expect(status_line(holder_page).get_by_role("button", name="Reload")).to_be_visible()
    assert time.monotonic() - refunded_at <= PLAYBACK_TTL
    stopped = current_time(holder_page)
    time.sleep(1.5)
    assert current_time(holder_page) in (stopped, -1)
    holder_page.page.screenshot(path="/tmp/live-video-refunded.png")
    holder_page.assert_clean(allowed=(REFUSED,))
    # Its next step: the reloaded page offers the ticket again.
    status_line(holder_page).get_by_role("button", name="Reload").click()
    expect(holder_page.page.get_by_test_id("ticket-gate")).to_be_visible()
    assert db.session.get(Stream, show.id).status == "live"
