"""A call that is over is over, on a phone (issue 17, "Dead ends"; DESIGN.md §5 Calls, §8).

Two Chromium pages at 390×844 with a fake camera and microphone, against the live
server: when a call ends or is declined — whether the page was open when it happened
(pushed live) or is loaded afterwards — nothing of the live call stays usable (Tip,
camera, microphone, "Turn on sound", the videos), the page says how it went and offers
the next step, the creator who declined sees "You declined", and neither browser logs
a broken signaling socket ("Invalid frame header") when the call ends.
"""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from app.calls import service
from app.extensions import db
from tests.browser.pages import DESKTOP, assert_fits_and_accessible, assert_no_sideways_scroll
from tests.browser.test_call import RTC_TIMEOUT, TIMEOUT, fresh, state
from tests.browser.test_call import media_browser, open_page  # noqa: F401  (the fixtures)
from tests.browser.test_tips_live import wait_listening

PHONE = {"width": 390, "height": 844}
RATE = 60


@pytest.fixture()
def pair(make_fan, new_creator):
    """(fan with 1,000 tokens, creator taking calls at RATE)."""
    creator = new_creator(name=f"Host {uuid.uuid4().hex[:4]}")
    service.update_settings(creator, RATE, True)
    return make_fan(balance=1_000, name=f"Caller {uuid.uuid4().hex[:4]}"), creator


def no_live_controls(p) -> None:
    """Nothing of a running call is left to press or to look at."""
    page = p.page
    for test_id in ("tip-button", "toggle-camera", "toggle-mic", "unmute", "call-end", "call-pause"):
        expect(page.get_by_test_id(test_id)).not_to_be_visible()
    expect(page.locator("[data-local-video]")).not_to_be_visible()
    expect(page.locator("[data-remote-video]")).not_to_be_visible()
    assert page.evaluate("""() => [...document.querySelectorAll('video')]
        .every(v => !v.srcObject || v.srcObject.getTracks().every(t => t.readyState === 'ended'))"""), \
        "a video still holds a live camera track"




def test_an_ended_call_leaves_no_live_controls_says_how_it_went_and_offers_next_steps(open_page, hub, pair):
    """Ended while both pages watch: both drop Tip, camera, sound and the videos, show
    "Call ended — <time>, <tokens> tokens" with the next steps, and neither logs a
    signaling-socket error; a reload shows the same."""
    fan, creator = pair
    call_id = service.init_call(fan, creator.id, RATE).id
    service.accept(creator, call_id)

    f = open_page(fan, f"/calls/{call_id}", viewport=PHONE)
    c = open_page(creator, f"/calls/{call_id}", viewport=PHONE)
    for p in (f, c):
        expect(p.page.locator("[data-call-page]")).to_have_attribute("data-rtc-state", "connected",
                                                                     timeout=RTC_TIMEOUT)
        wait_listening(p, hub, ".call-side")
    expect(f.page.get_by_test_id("tip-button")).to_be_visible()

    state(f, call_id).get_by_role("button", name="End call").click()
    for p in (f, c):
        outcome = p.page.get_by_test_id("call-outcome")
        expect(outcome).to_be_visible(timeout=TIMEOUT)
        expect(outcome.get_by_role("heading")).to_have_text(re.compile(r"^Call ended — (\d+ s|\d+ min( \d+ s)?), 30 tokens$"))  # one 30-second block at 60/min
        no_live_controls(p)
        expect(p.page.locator("[data-call-page]")).to_have_attribute("data-rtc-state", "closed")
    steps = f.page.get_by_test_id("call-next-steps")
    expect(steps.get_by_role("button", name=f"Call {creator.display_name} again")).to_be_visible()
    expect(steps.get_by_role("link", name=f"{creator.display_name}'s page")).to_have_attribute("href", f"/c/{creator.handle}")
    expect(steps.get_by_role("link", name="Your wallet")).to_have_attribute("href", "/wallet")
    expect(steps.get_by_role("link", name="Discover")).to_have_attribute("href", "/")
    expect(c.page.get_by_test_id("call-next-steps").get_by_role("link", name="Your dashboard")).to_be_visible()
    f.page.screenshot(path="/tmp/phone-call-ended-fan.png", full_page=True)
    c.page.screenshot(path="/tmp/phone-call-ended-creator.png", full_page=True)
    # Give a late socket error time to be logged (Chromium reports it when the close goes wrong).
    f.page.wait_for_timeout(1_500)
    for p in (f, c):
        assert_fits_and_accessible(p)
        p.assert_clean()

    # Loaded afterwards: the same outcome, nothing live, no socket opened for signaling.
    f.page.reload()
    expect(f.page.get_by_test_id("call-outcome")).to_be_visible()
    no_live_controls(f)
    # "Call again" opens the Call modal right here.
    f.page.get_by_role("button", name=f"Call {creator.display_name} again").click()
    expect(f.page.get_by_role("dialog", name=f"Video call with {creator.display_name}")).to_be_visible()
    f.assert_clean()

    # With calls turned off, no "Call again"; the other ways on stay.
    service.update_settings(creator, RATE, False)
    d = open_page(fan, f"/calls/{call_id}", viewport=DESKTOP)
    steps = d.page.get_by_test_id("call-next-steps")
    expect(steps.get_by_role("link", name="Discover")).to_be_visible()
    expect(steps.get_by_role("button", name=re.compile("again"))).to_have_count(0)
    no_live_controls(d)
    assert_no_sideways_scroll(d)
    d.page.screenshot(path="/tmp/desktop-call-ended-fan.png", full_page=True)
    d.assert_clean()


def test_a_declined_call_tells_the_fan_who_declined_and_the_creator_you_declined(open_page, hub, pair):
    """Declined from the creator's notification: the fan's waiting page turns live into
    "<Creator> declined the call" with next steps (no camera left on), and the creator's
    notification says "You declined …" and stays until dismissed."""
    fan, creator = pair
    c = open_page(creator, "/dashboard", viewport=PHONE)
    wait_listening(c, hub, "[ws-connect='/ws/me']")
    call_id = service.init_call(fan, creator.id, RATE).id
    f = open_page(fan, f"/calls/{call_id}", viewport=PHONE)
    wait_listening(f, hub, ".call-side")
    expect(f.page.get_by_test_id("toggle-camera")).to_be_enabled(timeout=TIMEOUT)  # the camera is on

    request = c.page.locator(f"#call-request-{call_id}")
    expect(request).to_contain_text(f"{fan.display_name} wants a video call")
    request.get_by_role("button", name="Decline").click()
    expect(request).to_have_text(re.compile(rf"You declined {re.escape(fan.display_name)}'s call"))
    c.page.wait_for_timeout(1_000)  # the pushed list of pending requests arrives too: it must not wipe this
    expect(request).to_contain_text("You declined")
    expect(request.get_by_role("button", name="Dismiss")).to_be_visible()

    outcome = f.page.get_by_test_id("call-outcome")
    expect(outcome.get_by_role("heading")).to_have_text(f"{creator.display_name} declined the call", timeout=TIMEOUT)
    no_live_controls(f)
    steps = f.page.get_by_test_id("call-next-steps")
    expect(steps.get_by_role("link", name=f"{creator.display_name}'s page")).to_be_visible()
    expect(steps.get_by_role("button", name=f"Call {creator.display_name} again")).to_be_visible()
    f.page.screenshot(path="/tmp/phone-call-declined-fan.png", full_page=True)
    c.page.screenshot(path="/tmp/phone-call-declined-creator.png", full_page=True)
    assert fresh(call_id).status == "declined"

    # The creator opening the call afterwards reads it in their own words.
    c2 = open_page(creator, f"/calls/{call_id}", viewport=PHONE)
    expect(c2.page.get_by_test_id("call-outcome").get_by_role("heading")).to_have_text(
        f"You declined {fan.display_name}'s call")
    no_live_controls(c2)
    f.page.wait_for_timeout(1_000)
    for p in (f, c, c2):
        assert_fits_and_accessible(p)
        p.assert_clean()
    db.session.rollback()
