"""A fan who owes tokens after a refund tries to tip in a real browser: the tip
modal says why it can't and links to /wallet, which shows the debt and how to
repay it. On a phone and on a desktop; axe-core finds no violations."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.payments.providers import format_money
from tests.browser.pages import axe_violations, fresh_pages, wait_htmx_ready
from tests.wallet.reversal_helpers import indebted_fan

TIMEOUT = 5_000
REFUSED_403 = r"status of 403 \(FORBIDDEN\)"  # the browser logs the refused tip
OWED = 75


@pytest.fixture()
def browse(browser, live_server):
    """browse(viewport) → a Page in a fresh browser context; all closed afterwards."""
    yield from fresh_pages(browser, live_server, TIMEOUT)


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 900}],
                         ids=["phone", "desktop"])
def test_a_restricted_fan_sees_why_they_cannot_tip_and_finds_the_debt_on_the_wallet(
        browse, make_fan, make_creator, make_stream, viewport):
    fan, creator, _ = indebted_fan(make_fan, make_creator, OWED, held=25)
    stream = make_stream(creator, title="Late show", live=True)
    p = browse(viewport)
    page = p.page
    page.goto(f"/login?next=/streams/{stream.id}")
    page.get_by_label("Email").fill(fan.email)
    page.get_by_label("Password").fill(fan.test_password)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/streams/{stream.id}$"))
    page.wait_for_load_state("load")
    wait_htmx_ready(page, '[data-testid="tip-button"]')

    with page.expect_response(lambda r: urlsplit(r.url).path == "/tips/new") as answer:
        page.get_by_test_id("tip-button").click()
    assert answer.value.status == 200
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_text("50", exact=True).click()
    dialog.get_by_role("button", name="Send tip").click()
    notice = dialog.get_by_test_id("restricted")
    expect(notice).to_have_text(f"Your account is restricted: {OWED} tokens are owed after a refund or chargeback. "
                                "Buy tokens to repay them.")
    link = notice.get_by_role("link", name="Buy tokens to repay them.")
    expect(link).to_have_attribute("href", "/wallet")
    assert axe_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.screenshot(path=f"/tmp/restricted-tip-{viewport['width']}.png", caret="initial", animations="disabled")

    link.click()
    expect(page).to_have_url(re.compile(r"/wallet$"))
    debt = page.get_by_test_id("debt")
    expect(debt).to_contain_text(f"You owe {OWED} tokens.")
    expect(debt).to_contain_text("A refund or chargeback took back tokens you had already spent.")
    expect(debt.get_by_role("link", name="Buy tokens to repay")).to_be_visible()
    expect(page.locator("#wallet-history")).to_contain_text("Taken back: purchase #")
    assert axe_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]  # nothing scrolls sideways
    page.screenshot(path=f"/tmp/restricted-wallet-{viewport['width']}.png", full_page=True, caret="initial",
                    animations="disabled")
    p.assert_clean(allowed=(REFUSED_403,))


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 900}],
                         ids=["phone", "desktop"])
def test_an_operator_refunds_a_spent_purchase_from_the_platform_page_and_the_fan_owes_it(
        browse, make_user, make_fan, make_creator, viewport):
    """The refund that restricts a fan, done in test mode from /platform's Purchases section."""
    from tests.wallet.reversal_helpers import make_operator, owed, paid_purchase, spend
    operator = make_operator(make_user)
    fan = make_fan()
    purchase = paid_purchase(fan, 100, provider="demo")
    spend(fan, make_creator(), 60)
    p = browse(viewport)
    page = p.page
    page.goto("/login?next=/platform")
    page.get_by_label("Email").fill(operator.email)
    page.get_by_label("Password").fill(operator.test_password)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/platform$"))
    section = page.get_by_test_id("platform-purchases")
    expect(section.get_by_role("heading", name="Purchases")).to_be_visible()

    section.get_by_label("Find a purchase by its number or the buyer's e-mail").fill(fan.email)
    section.get_by_role("button", name="Search").click()
    expect(section.get_by_test_id("purchase-row")).to_have_count(1)
    section.get_by_role("link", name=f"Refund purchase #{purchase.id}").click()
    panel = page.get_by_test_id("refund-panel")
    expect(panel).to_contain_text(f"Everything left: 100 tokens ({format_money(100, 'usd')})")
    panel.get_by_role("button", name="Refund").click()
    expect(panel.get_by_test_id("refund-error")).to_have_text("Tick the box to confirm the refund.")
    assert axe_violations(page) == []
    panel.screenshot(path=f"/tmp/platform-refund-form-{viewport['width']}.png", caret="initial",
                     animations="disabled")
    page.get_by_test_id("refund-panel").get_by_role("checkbox").check()
    page.get_by_test_id("refund-panel").get_by_role("button", name="Refund").click()
    expect(page.get_by_test_id("refund-notice")).to_contain_text(
        f"Purchase #{purchase.id}: {format_money(100, 'usd')} refunded")
    expect(page.get_by_test_id("purchase-status")).to_have_text("refunded (test)")
    expect(page.get_by_test_id("purchase-refunded")).to_have_text("100")
    assert axe_violations(page) == []
    # The section fits the screen: only its table scrolls sideways, inside it.
    assert page.evaluate("(s => s.scrollWidth <= s.clientWidth)(document.getElementById('platform-purchases'))")
    page.screenshot(path=f"/tmp/platform-refund-{viewport['width']}.png", full_page=True, caret="initial",
                    animations="disabled")
    assert owed(fan.id) == 60
    p.assert_clean(allowed=(r"status of 422",))
