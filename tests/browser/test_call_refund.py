"""Call refunds in a real browser (app/calls/refunds.py): both parties' call pages show a
refund arrive live, on a phone and on a desktop; an operator refunds a block from
/platform with the keyboard.

Debian's Chromium through Playwright against the live server (real PostgreSQL, Redis
and WebSockets). The calls are made and ended through the services; their media never
connected (no page was open while they ran), so the refund sweep gives block 0 back.
"""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from app.calls import refunds, service
from app.extensions import db
from tests.browser.pages import axe_violations, logged_in_pages
from tests.browser.test_tips_live import WS_PROBE, log_in, wait_listening

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
RATE = 60  # tokens/min: block 0 costs 30, the creator's share 24
SHOTS = "/tmp/call-refund-{party}-{width}.png"


@pytest.fixture()
def open_page(browser, live_server):
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in)


@pytest.fixture()
def ended_call(ctx, make_call, make_fan, make_creator, no_open_calls):
    """An accepted, then ended, call whose media never connected; other leftovers refunded
    first, so the sweep the test runs is about this call."""
    while refunds.refund_unconnected_calls():
        pass
    fan = make_fan(balance=1_000, name=f"Caller {uuid.uuid4().hex[:4]}")
    creator = make_creator(name=f"Host {uuid.uuid4().hex[:4]}")
    call_id = make_call(rate=RATE, present=False, fan=fan, creator=creator).call_id
    service.end(fan, call_id)
    return fan, creator, call_id


def no_overflow(p) -> bool:
    return p.page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_both_call_pages_show_the_refund_of_a_call_whose_media_never_connected(open_page, hub, ended_call):
    fan, creator, call_id = ended_call
    pages = {"fan": open_page(fan, f"/calls/{call_id}"), "creator": open_page(creator, f"/calls/{call_id}")}
    for p in pages.values():
        expect(p.page.get_by_test_id("call-status")).to_have_text("Ended")
        expect(p.page.get_by_test_id("call-totals")).to_have_text("Charged 30 tokens")
        wait_listening(p, hub, "aside[ws-connect]")
    expect(pages["fan"].page.get_by_test_id("call-balance")).to_have_text("970")

    assert refunds.refund_unconnected_calls() == [call_id]
    db.session.remove()

    # Live, without a reload: each page re-fetches its own receipts when the panel arrives.
    for party, amount in (("fan", "+30"), ("creator", "−24")):
        page = pages[party].page
        expect(page.get_by_test_id("call-totals")).to_have_text("Charged 30 · Refunded 30 · Net 0 tokens")
        refund = page.get_by_test_id("call-receipts").locator(".receipt-block-refunded")
        expect(refund).to_contain_text("Block 1 refunded")
        expect(refund).to_contain_text(amount)
        expect(refund).to_contain_text("(media never connected)")
    expect(pages["fan"].page.get_by_test_id("call-balance")).to_have_text("1,000")
    expect(pages["creator"].page.get_by_test_id("call-earned")).to_have_text("0")

    for party, p in pages.items():
        for viewport in (DESKTOP, PHONE):
            p.page.set_viewport_size(viewport)
            expect(p.page.get_by_test_id("call-totals")).to_be_visible()
            assert no_overflow(p), f"the {party}'s call page scrolls sideways at {viewport}"
            assert axe_violations(p.page) == [], (party, viewport)
            p.page.screenshot(path=SHOTS.format(party=party, width=viewport["width"]), full_page=True)
        p.assert_clean()


def test_an_operator_refunds_a_block_from_platform_with_the_keyboard(open_page, hub, ended_call, make_fan):
    fan, creator, call_id = ended_call
    operator = make_fan(name=f"Ops {uuid.uuid4().hex[:4]}")
    operator.is_operator = True
    db.session.commit()
    watching = open_page(fan, f"/calls/{call_id}")
    wait_listening(watching, hub, "aside[ws-connect]")

    o = open_page(operator, "/platform")
    page = o.page
    lookup = page.get_by_label("Call number")  # the section arrives by htmx after the page
    lookup.focus()
    page.keyboard.type(str(call_id))
    page.keyboard.press("Enter")
    section = page.locator("#platform-calls")
    expect(section.get_by_role("heading", name=f"Call #{call_id}")).to_be_visible()
    expect(section.get_by_test_id("platform-call-totals")).to_have_text("Charged 30 · Refunded 0 · Net 30 tokens")
    assert axe_violations(page) == []

    page.get_by_label("Block 1").check()
    page.get_by_test_id("refund-selected").click()
    expect(section).to_contain_text("Refund block 1?")
    expect(section).to_contain_text(f"{fan.display_name} gets 30 tokens back: 24 from {creator.display_name}")
    assert axe_violations(page) == []
    page.get_by_test_id("refund-confirm").focus()
    page.keyboard.press("Enter")
    expect(section.get_by_test_id("refund-notice")).to_have_text("Refunded block 1.")
    expect(section.get_by_test_id("platform-call-totals")).to_have_text("Charged 30 · Refunded 30 · Net 0 tokens")
    expect(section.get_by_role("cell", name=re.compile(r"Refunded \(refunded by the platform\)"))).to_be_visible()

    # The fan's open call page hears of it.
    expect(watching.page.get_by_test_id("call-totals")).to_have_text("Charged 30 · Refunded 30 · Net 0 tokens")
    expect(watching.page.locator(".receipt-block-refunded")).to_contain_text("(refunded by the platform)")

    page.set_viewport_size(PHONE)
    assert no_overflow(o) and axe_violations(page) == []
    page.screenshot(path="/tmp/platform-calls-390.png", full_page=True)
    assert refunds.refund_unconnected_calls() == []  # already refunded, by the operator
    o.assert_clean()
    watching.assert_clean()
