"""A fan buys tokens through (the stand-in of) Stripe Checkout in a real browser
and lands back on /wallet seeing the credit (DESIGN.md §11).

Debian's Chromium through Playwright against `stripe_app` served over HTTP
(PAYMENTS_PROVIDER=stripe, the real stripe SDK talking to the local stand-in,
whose hosted Checkout page delivers its signed webhook to that server). Every
page records console errors, script errors and dialogs, and axe-core checks it.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import Page, axe_violations, logged_in_pages
from tests.browser.test_tips_live import WS_PROBE, log_in, wait_listening
from tests.wallet.stripe_helpers import purchase_row, stripe_server, wallet_of  # noqa: F401 (a fixture)

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


@pytest.fixture()
def open_wallet(browser, stripe_server):
    """open_wallet(user, viewport) → a Page logged in on `stripe_app`'s /wallet."""
    for open_page in logged_in_pages(browser, stripe_server, TIMEOUT, WS_PROBE, log_in):
        yield lambda user, viewport, path="/wallet": open_page(user, path, VIEWPORTS[viewport])


def assert_accessible(p: Page) -> None:
    violations = axe_violations(p.page)
    assert violations == [], f"axe on {p.page.url}: {violations}"


def purchase_item(page, purchase_id: int):
    return page.locator(f"#purchase-{purchase_id}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_fan_buys_a_pack_at_checkout_and_comes_back_credited(open_wallet, make_fan, stripe_standin, viewport):
    fan = make_fan()
    p = open_wallet(fan, viewport)
    page = p.page
    expect(page.locator(".test-banner")).to_have_count(0)  # real payments: no test-mode banner
    pack = page.locator('#buy-sheet button[data-pack="1000"]')
    expect(pack).to_contain_text("$10.00")
    expect(page.locator("#custom-amount-price")).to_contain_text("One token costs $0.01")
    assert_accessible(p)

    pack.click()
    # Stripe's hosted Checkout (the stand-in's page): the amount, and Pay.
    expect(page).to_have_url(re.compile(re.escape(stripe_standin.url) + r"/pay/cs_test_\w+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay 10.00 USD")
    [session_id] = stripe_standin.sessions
    purchase_id = int(stripe_standin.sessions[session_id]["client_reference_id"])
    page.get_by_role("button", name="Pay").click()

    # Back on /wallet, that purchase highlighted and credited, the balance with it.
    expect(page).to_have_url(re.compile(rf"/wallet\?purchase={purchase_id}$"))
    page.wait_for_load_state("load")
    item = purchase_item(page, purchase_id)
    expect(item).to_contain_text("Credited")
    expect(item).to_contain_text("1,000 tokens")
    expect(item).to_contain_text("$10.00")
    expect(page.locator("li.highlighted")).to_contain_text("Your purchase")
    expect(page.locator("#wallet-balance [data-testid=balance]")).to_have_text("1,000")
    expect(page.locator("#nav-balance")).to_have_text("1,000")
    expect(page.locator("#wallet-history tbody tr", has_text="Bought 1,000 tokens")).to_contain_text("$10.00")
    assert purchase_row(purchase_id)["status"] == "completed" and wallet_of(fan.id) == 1000
    assert_accessible(p)
    page.screenshot(path=f"/tmp/checkout-{viewport}.png", full_page=True, caret="initial", animations="disabled")
    p.assert_clean()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_pending_purchase_turns_credited_live_when_the_webhook_lands(open_wallet, make_fan, stripe_standin,
                                                                       stripe_app, viewport):
    fan = make_fan()
    p = open_wallet(fan, viewport)
    page = p.page
    page.locator("#custom-amount").fill("750")
    expect(page.get_by_test_id("custom-price")).to_have_text("$7.50")
    page.locator("#buy-sheet form.custom-amount").get_by_role("button", name="Buy", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(stripe_standin.url) + r"/pay/"))
    [session_id] = stripe_standin.sessions
    purchase_id = int(stripe_standin.sessions[session_id]["client_reference_id"])
    # The buyer goes back without paying (yet): the purchase waits, with a way back to Checkout.
    page.get_by_role("link", name="Back").click()
    expect(page).to_have_url(re.compile(r"/wallet$"))
    page.wait_for_load_state("load")
    item = purchase_item(page, purchase_id)
    expect(item).to_contain_text("Waiting for payment…")
    expect(item.locator(".spinner")).to_be_visible()
    expect(item.get_by_role("link", name="Continue to checkout")).to_have_attribute(
        "href", stripe_standin.sessions[session_id]["url"])
    assert_accessible(p)
    page.screenshot(path=f"/tmp/checkout-pending-{viewport}.png", full_page=True, caret="initial",
                    animations="disabled")
    wait_listening(p, stripe_app.extensions["realtime_hub"], "[ws-connect='/ws/me']")

    # The payment completes elsewhere (another device, a slow bank); Stripe tells the server.
    assert stripe_standin.deliver(stripe_standin.pay(session_id)).status_code == 200

    expect(item).to_contain_text("Credited")
    expect(item.locator(".spinner")).to_have_count(0)
    expect(page.locator("#wallet-balance [data-testid=balance]")).to_have_text("750")
    expect(page.locator("#nav-balance")).to_have_text("750")
    expect(page.locator(f"#purchase-{purchase_id}")).to_have_count(1)
    assert_accessible(p)
    p.assert_clean()


def test_an_expired_checkout_offers_to_try_again(open_wallet, make_fan, stripe_standin, stripe_app):
    fan = make_fan()
    p = open_wallet(fan, "phone")
    page = p.page
    page.locator('#buy-sheet button[data-pack="500"]').click()
    expect(page).to_have_url(re.compile(re.escape(stripe_standin.url) + r"/pay/"))
    [session_id] = stripe_standin.sessions
    purchase_id = int(stripe_standin.sessions[session_id]["client_reference_id"])
    page.get_by_role("link", name="Back").click()
    page.wait_for_load_state("load")
    wait_listening(p, stripe_app.extensions["realtime_hub"], "[ws-connect='/ws/me']")
    stripe_standin.deliver(stripe_standin.expire(session_id))
    item = purchase_item(page, purchase_id)
    expect(item).to_contain_text("Checkout expired")
    item.get_by_role("link", name=re.compile("^Try again")).click()
    expect(page).to_have_url(re.compile(r"/wallet\?topup=500#buy-heading$"))
    expect(page.locator("#custom-amount")).to_have_value("500")
    expect(page.get_by_test_id("custom-price")).to_have_text("$5.00")
    assert_accessible(p)
    p.assert_clean()


def test_without_javascript_the_buy_form_still_reaches_checkout(browser, stripe_server, stripe_standin, make_fan):
    """The plain form's 303 to Checkout is a cross-origin redirect of a form
    submission, which CSP form-action governs: the provider's pages are allowed."""
    fan = make_fan()
    context = browser.new_context(base_url=stripe_server, java_script_enabled=False,
                                  viewport=VIEWPORTS["phone"])
    context.set_default_timeout(TIMEOUT)
    try:
        p = Page(context.new_page())
        page = p.page
        page.goto("/login?next=/wallet")
        page.get_by_label("Email").fill(fan.email)
        page.get_by_label("Password").fill(fan.test_password)
        page.get_by_role("button", name="Log in", exact=True).click()
        expect(page).to_have_url(re.compile(r"/wallet$"))
        page.locator('#buy-sheet button[data-pack="2500"]').click()
        expect(page).to_have_url(re.compile(re.escape(stripe_standin.url) + r"/pay/cs_test_\w+$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Pay 25.00 USD")
        page.get_by_role("button", name="Pay").click()
        expect(page).to_have_url(re.compile(r"/wallet\?purchase=\d+$"))
        expect(page.locator("li.highlighted")).to_contain_text("Credited")
        expect(page.locator("#wallet-balance [data-testid=balance]")).to_have_text("2,500")
        p.assert_clean()
    finally:
        context.close()
