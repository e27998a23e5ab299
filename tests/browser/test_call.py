"""A pay-per-minute video call in real browsers (DESIGN.md §5 Calls and Media, §8).

Two Chromium pages with fake camera and microphone (`--use-fake-device-for-media-stream`,
`--use-fake-ui-for-media-stream`) against the live server (real PostgreSQL, Redis and
WebSockets): the fan asks for a call from the creator's stream page, the creator
accepts from the live notification, both call pages connect over WebRTC and show each
other's video, the meter moves live as blocks are charged, pause shows on both sides,
and a creator who leaves is paused for presence once the grace has run out.

Time is injected (`app.extensions["clock"]`, read by app.clock.now) and the
meter is run by the test (`service.meter()`), so no step waits for a real 30 s block.
"""
from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.calls import service
from app.calls.models import Call
from app.extensions import db
from tests.browser.pages import Page, logged_in_pages
from tests.conftest import launch_chromium
from tests.browser.test_tips_live import WS_PROBE, log_in, wait_listening

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
LIVE = 1_000  # ms: a charge reaches both call pages within this, without a reload
RTC_TIMEOUT = 20_000  # ms: ICE + DTLS between two local pages takes ~1 s; leave room
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
RATE = 60  # tokens/min: 30 per 30-second block
CALL_SHOTS = "/tmp/call-{party}.png"  # what each side saw mid-call, for a human to look at
BLOCK = 30
REMOTE_VIDEO_PLAYS = """() => {
  const v = document.querySelector("[data-remote-video]");
  return !!v && v.videoWidth > 0 && v.videoHeight > 0;
}"""
@pytest.fixture(scope="module")
def media_browser(pw_driver):
    """Chromium with a fake camera and microphone, granted without a prompt."""
    yield from launch_chromium(pw_driver, MEDIA_ARGS)


@pytest.fixture()
def open_page(media_browser, live_server):
    """open_page(user, path) → a Page in a fresh context, logged in through /login, on `path`."""
    yield from logged_in_pages(media_browser, live_server, TIMEOUT, WS_PROBE, log_in)


@pytest.fixture()
def people(ctx, make_fan, make_creator):
    """(fan with 1,000 tokens, creator taking calls at RATE); their calls closed afterwards."""
    from app.tips import pushes
    creator = make_creator(name=f"Host {uuid.uuid4().hex[:4]}")
    pushes.mark_tips_seen(creator.id)
    service.update_settings(creator, RATE, True)
    fan = make_fan(balance=1_000, name=f"Caller {uuid.uuid4().hex[:4]}")
    yield fan, creator
    db.session.rollback()
    for call in db.session.scalars(db.select(Call).where(Call.fan_id == fan.id,
                                                         Call.status.in_(service.OPEN_STATUSES))):
        service.end(fan, call.id)


def fresh(call_id: int) -> Call:
    db.session.rollback()
    return db.session.get(Call, call_id, populate_existing=True)


def wait_until(predicate, what: str, timeout: float = TIMEOUT / 1000):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def state(p: Page, call_id: int):
    """The call page's state panel (live over the call's channel)."""
    return p.page.locator(f"#call-state-{call_id}")


def expect_meter(p: Page, call_id: int, *, status: str, blocks: int, timeout: int = LIVE) -> None:
    panel = state(p, call_id)
    expect(panel.get_by_test_id("call-status")).to_have_text(status, timeout=timeout)
    expect(panel.get_by_test_id("call-blocks")).to_have_text(str(blocks), timeout=timeout)


def test_a_fan_calls_a_creator_and_both_see_video_and_the_live_meter(open_page, hub, people, clock, app,
                                                                     api_headers, client, make_stream):
    fan, creator = people
    stream = make_stream(creator, title="Open studio", live=True)

    # The creator is somewhere in the app, listening on their own feed.
    c = open_page(creator, "/")
    wait_listening(c, hub, "[ws-connect='/ws/me']")

    # The fan asks for a call from the stream page: the modal shows the rate and what a call needs.
    f = open_page(fan, f"/streams/{stream.id}")
    f.page.get_by_test_id("call-button").click()
    dialog = f.page.get_by_role("dialog", name=f"Video call with {creator.display_name}")
    expect(dialog.get_by_test_id("call-rate")).to_have_text(f"{RATE} tokens per minute")
    expect(dialog.get_by_test_id("call-minimum")).to_have_text("60 tokens in your wallet (the first two blocks)")
    expect(dialog.get_by_test_id("call-modal-balance")).to_have_text("1,000 tokens")
    expect(dialog.get_by_role("button", name=re.compile(r"^Call now"))).to_be_focused()
    f.page.keyboard.press("Enter")
    expect(f.page).to_have_url(re.compile(r"/calls/\d+$"))
    call_id = int(f.page.url.rsplit("/", 1)[1])
    expect_meter(f, call_id, status="Requested", blocks=0, timeout=TIMEOUT)
    expect(f.page.get_by_test_id("stage-status")).to_have_text(f"Waiting for {creator.display_name} to accept…")

    # The creator is told live, and accepts: both are on the call page.
    request = c.page.locator(f"#call-request-{call_id}")
    expect(request).to_contain_text(f"{fan.display_name} wants a video call · 60 tokens/min")
    request.get_by_role("button", name="Accept").click()
    expect(c.page).to_have_url(re.compile(rf"/calls/{call_id}$"))

    # WebRTC: both peer connections up, each page playing the other's camera.
    for p in (f, c):
        expect(p.page.locator("[data-call-page]")).to_have_attribute("data-rtc-state", "connected",
                                                                     timeout=RTC_TIMEOUT)
        p.page.wait_for_function(REMOTE_VIDEO_PLAYS, timeout=RTC_TIMEOUT)
        expect(p.page.get_by_test_id("stage-status")).to_be_hidden()
        wait_listening(p, hub, ".call-side")
    # …and the server counts both present (socket + media connected).
    wait_until(lambda: (lambda call: call.fan_missing_since is None and call.creator_missing_since is None)(
        fresh(call_id)), "both parties present")

    # Block 0 was charged at acceptance.
    for p in (f, c):
        expect_meter(p, call_id, status="Live", blocks=1, timeout=TIMEOUT)
    expect(f.page.get_by_test_id("call-balance")).to_have_text("970")
    expect(state(f, call_id).get_by_test_id("call-spent")).to_have_text("30")
    expect(c.page.get_by_test_id("call-earned")).to_have_text("24")
    expect(state(f, call_id).get_by_test_id("call-next-charge-seconds")).to_have_text(re.compile(r"^\d+$"))

    f.page.screenshot(path=CALL_SHOTS.format(party="fan"))
    c.page.screenshot(path=CALL_SHOTS.format(party="creator"))

    # The next block starts 30 s of talk later: the meter charges it and both pages follow live.
    clock.advance(BLOCK)
    assert service.meter().blocks_charged >= 1
    for p in (f, c):
        expect_meter(p, call_id, status="Live", blocks=2)
    expect(f.page.get_by_test_id("call-balance")).to_have_text("940", timeout=LIVE)
    expect(state(f, call_id).get_by_test_id("call-spent")).to_have_text("60", timeout=LIVE)
    expect(c.page.get_by_test_id("call-earned")).to_have_text("48", timeout=LIVE)
    expect(c.page.get_by_test_id("call-receipts").locator("li").first).to_contain_text("Block 2 +24 of 30")
    expect(f.page.get_by_test_id("call-receipts").locator("li").first).to_contain_text("Block 2 −30")

    # Pause from the creator's side shows on both; the fan resumes.
    state(c, call_id).get_by_role("button", name="Pause billing").click()
    for p in (f, c):
        expect(state(p, call_id).get_by_test_id("call-status")).to_have_text("Paused", timeout=LIVE)
    expect(state(f, call_id).get_by_test_id("call-status-detail")).to_have_text(
        "Billing paused by the creator. Resume to continue.")
    state(f, call_id).get_by_role("button", name="Resume").click()
    for p in (f, c):
        expect(state(p, call_id).get_by_test_id("call-status")).to_have_text("Live", timeout=LIVE)

    # The next block start takes the next 30 tokens from the fan's balance, on the page.
    clock.advance(BLOCK)
    service.meter()
    for p in (f, c):
        expect_meter(p, call_id, status="Live", blocks=3)
    expect(f.page.get_by_test_id("call-balance")).to_have_text("910", timeout=LIVE)

    # A reload shows the same figures, and the video comes back (the new page negotiates afresh).
    f.page.reload()
    expect_meter(f, call_id, status="Live", blocks=3, timeout=TIMEOUT)
    expect(f.page.get_by_test_id("call-balance")).to_have_text("910")
    for p in (f, c):
        expect(p.page.locator("[data-call-page]")).to_have_attribute("data-rtc-state", "connected",
                                                                     timeout=RTC_TIMEOUT)
    f.page.wait_for_function(REMOTE_VIDEO_PLAYS, timeout=RTC_TIMEOUT)
    wait_listening(f, hub, ".call-side")
    wait_until(lambda: fresh(call_id).fan_missing_since is None, "the fan present again")

    # Camera and microphone toggle from the keyboard.
    camera = f.page.get_by_test_id("toggle-camera")
    camera.focus()
    f.page.keyboard.press("Enter")
    expect(camera).to_have_attribute("aria-pressed", "false")
    expect(camera).to_have_text("Camera: off")
    f.page.keyboard.press("Space")
    expect(camera).to_have_attribute("aria-pressed", "true")

    for p in (f, c):
        p.assert_clean()

    # The creator closes their page: billing pauses for presence once the grace has run out.
    c.page.close()
    wait_until(lambda: fresh(call_id).creator_missing_since is not None, "the server noticing the creator left")
    expect(f.page.locator("[data-call-page]")).to_have_attribute("data-peer", "gone", timeout=TIMEOUT)
    expect(f.page.get_by_test_id("stage-status")).to_contain_text(f"{creator.display_name} dropped")
    assert fresh(call_id).status == "active"  # still within the grace
    clock.advance(app.config["PRESENCE_GRACE_SECONDS"] + 1)
    service.meter()
    resp = client.get(f"/api/calls/{call_id}", headers=api_headers(fan))
    assert resp.get_json()["call"]["status"] == "paused", resp.get_json()
    events = client.get(f"/api/billing/calls/{call_id}/history", headers=api_headers(fan)).get_json()["events"]
    assert events[-1]["type"] == "paused" and events[-1]["reason"] == "presence", events
    assert fresh(call_id).paused_by == "presence"
    expect(state(f, call_id).get_by_test_id("call-status")).to_have_text("Paused", timeout=LIVE)
    expect(state(f, call_id).get_by_test_id("call-status-detail")).to_contain_text(re.compile(r"connections? dropped"))
    expect(f.page.get_by_test_id("call-balance")).to_have_text("910")  # nothing more charged
    f.assert_clean()


HOSTILE_RATE = "<script>window.pw=1</script>"  # within the field's maxlength (32)


def calls_of(fan) -> int:
    db.session.rollback()
    return db.session.scalar(db.select(db.func.count()).select_from(Call).where(Call.fan_id == fan.id))


def test_wrong_input_in_the_call_flow_shows_by_its_field_and_changes_nothing(open_page, make_fan, make_creator,
                                                                             make_stream):
    creator = make_creator(name=f"Host {uuid.uuid4().hex[:4]}")
    service.update_settings(creator, RATE, True)
    stream = make_stream(creator, title="Open studio", live=True)

    # The creator types a hostile rate, then zero: each error sits by the field (focused, what
    # was typed kept, the text never run) and the saved settings stay.
    c = open_page(creator, "/creator/settings")
    rate = c.page.get_by_label("Rate (tokens per minute)")
    for typed, message in ((HOSTILE_RATE, "Enter a whole number of tokens, like 1000."),
                           ("0", "The amount must be at least 1 token.")):
        rate.fill(typed)
        with c.page.expect_response(lambda r: urlsplit(r.url).path == "/creator/settings/calls") as answer:
            c.page.get_by_role("button", name=re.compile(r"^Save call settings")).click()
        assert answer.value.status == 422
        expect(c.page.locator("#call-rate-error")).to_have_text(message)
        expect(rate).to_have_attribute("aria-invalid", "true")
        expect(rate).to_be_focused()
        expect(rate).to_have_value(typed)
        if typed == HOSTILE_RATE:
            c.page.screenshot(path="/tmp/call-settings-error.png")
    assert c.page.evaluate("window.pw") is None
    db.session.refresh(creator)
    assert (creator.call_rate_tokens_per_min, creator.calls_enabled) == (RATE, True)
    c.assert_clean(allowed=(r"status of 422",))

    # A fan with too few tokens: the modal says how many more, and the top-up sheet opens there
    # with that amount filled in. No call is made.
    poor = make_fan(balance=45, name=f"Short {uuid.uuid4().hex[:4]}")  # a call needs 30 + 30
    f = open_page(poor, f"/streams/{stream.id}")
    f.page.get_by_test_id("call-button").click()
    dialog = f.page.get_by_role("dialog", name=f"Video call with {creator.display_name}")
    with f.page.expect_response(lambda r: urlsplit(r.url).path == "/calls") as answer:
        dialog.get_by_test_id("call-confirm").click()
    assert answer.value.status == 402
    expect(dialog.get_by_test_id("call-error")).to_contain_text("15 more needed")
    dialog.get_by_test_id("topup-link").click()
    expect(dialog.locator("#custom-amount")).to_have_value("15")
    f.page.screenshot(path="/tmp/call-too-few-tokens.png")
    assert calls_of(poor) == 0
    f.assert_clean(allowed=(r"status of 402",))

    # The creator raises the rate while a fan's modal shows the old one: "Call now" answers 409
    # with the new rate to confirm, and no call is made at a price the fan didn't see.
    fan = make_fan(balance=1_000, name=f"Caller {uuid.uuid4().hex[:4]}")
    p = open_page(fan, f"/streams/{stream.id}")
    p.page.get_by_test_id("call-button").click()
    dialog = p.page.get_by_role("dialog", name=f"Video call with {creator.display_name}")
    expect(dialog.get_by_test_id("call-rate")).to_have_text(f"{RATE} tokens per minute")
    service.update_settings(creator, 90, True)
    with p.page.expect_response(lambda r: urlsplit(r.url).path == "/calls") as answer:
        dialog.get_by_test_id("call-confirm").click()
    assert answer.value.status == 409
    expect(dialog.get_by_test_id("call-error")).to_have_text(
        "The rate is now 90 tokens per minute; confirm the new rate to call.")
    expect(dialog.get_by_test_id("call-confirm")).to_have_text(re.compile(r"^Call now · 90 tokens/min"))
    assert calls_of(fan) == 0
    p.assert_clean(allowed=(r"status of 409",))
