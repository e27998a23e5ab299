"""Private shows in real browsers: the ticket gate, buying a ticket in place,
tips that only ticket holders see, topping up from the gate, the keyboard.

Debian's Chromium through Playwright against the live server (real
PostgreSQL, real Redis, real WebSockets). Each user is a fresh browser
context logged in through /login; users and funds come from the fixtures,
shows from the JSON API. Every page records console errors, script errors,
dialogs and navigations (tests/browser/pages.py).
"""
from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.pages import Page, logged_in_pages
from tests.browser.test_tips_live import WS_PROBE, log_in, open_tip_modal, pop, tip_of, wait_listening

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
NOT_DELIVERED_WAIT = 2.0  # s: how long a page without a ticket must stay without the tip
PRICE = 1_500  # tokens: big enough that the thousands separator shows
# The browser logs every 4xx answer it fetched; the gate answers 402 when the wallet is short.
PAYMENT_REQUIRED_LOG = re.compile(r"^Failed to load resource: the server responded with a status of 402\b")


@pytest.fixture()
def open_page(browser, live_server):
    """open_page(user, path) → a Page in a fresh context, logged in through /login, on `path`."""
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in)


@pytest.fixture()
def private_show(client, api_headers):
    """private_show(creator, price=PRICE) → id of a new private show, live, made through the JSON API."""
    def _make(creator, price=PRICE):
        resp = client.post("/api/streams/create", headers=api_headers(creator),
                           json={"type": "private", "title": f"Private {uuid.uuid4().hex[:6]}", "ticketPrice": price})
        assert resp.status_code == 201, resp.get_json()
        stream = resp.get_json()["stream"]
        resp = client.post(f"/api/streams/{stream['id']}/start", headers=api_headers(creator))
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["stream"]["status"] == "live"
        return stream["id"]
    return _make


def nav_balance(p: Page):
    return p.page.locator("#nav-balance")


def gate(p: Page):
    return p.page.get_by_test_id("ticket-gate")


def buy_button(p: Page):
    return p.page.get_by_test_id("buy-ticket")


def ticket_post(response) -> bool:
    return response.request.method == "POST" and re.fullmatch(r"/streams/\d+/ticket", urlsplit(response.url).path)


def expect_gate(p: Page, *, balance: str, price: str = f"{PRICE:,}") -> None:
    """The ticket gate with the price and the user's balance; nothing of the show itself."""
    page = p.page
    expect(gate(p)).to_be_visible()
    expect(gate(p).get_by_role("heading", name="Private show")).to_be_visible()
    expect(gate(p)).to_contain_text(f"A ticket costs {price} tokens")
    expect(page.get_by_test_id("gate-balance")).to_have_text(balance)
    expect(buy_button(p)).to_be_visible()
    expect(buy_button(p)).to_contain_text(f"Buy ticket · {price} tokens")
    expect(page.get_by_test_id("tip-button")).to_have_count(0)
    expect(page.locator("#tip-overlay")).to_have_count(0)
    expect(page.locator("#recent-tips")).to_have_count(0)
    expect(page.get_by_test_id("ticket-held")).to_have_count(0)
    expect(page.locator(".player[ws-connect]")).to_have_count(0)  # no socket to the show's channel


def expect_show(p: Page) -> None:
    """The show itself, for a ticket holder: no gate, the overlay, the Tip button, the ticket line."""
    page = p.page
    expect(gate(p)).to_have_count(0)
    expect(buy_button(p)).to_have_count(0)
    expect(page.locator("#tip-overlay")).to_have_count(1)
    expect(page.get_by_test_id("tip-button")).to_be_visible()
    expect(page.get_by_test_id("ticket-held")).to_have_text("🎟 You have a ticket to this show.")
    expect(page.locator("#player-state")).to_contain_text("The creator is live.")
    expect(page.locator("#show")).to_have_count(1)
    expect(page.locator("#show #show")).to_have_count(0)  # swapped inside, not nested


def assert_no_console_errors(p: Page, allowed: tuple[re.Pattern, ...] = ()) -> None:
    """No console error at all but `allowed` (Page.assert_clean counts every one)."""
    p.assert_clean(allowed=tuple(a.pattern for a in allowed))


# ---- 1. buying a ticket turns the gate into the show, in place ----------------------

def test_buying_a_ticket_swaps_the_gate_for_the_show(open_page, hub, make_fan, new_creator, private_show):
    creator = new_creator()
    fan = make_fan(balance=5_000)
    stream_id = private_show(creator)
    a = open_page(fan, f"/streams/{stream_id}")
    page = a.page

    expect(page.locator(".price-tag")).to_have_text(f"Private · {PRICE:,} tokens")
    expect_gate(a, balance="5,000")
    expect(nav_balance(a)).to_have_text("5,000")
    navigations = a.navigations

    with page.expect_response(ticket_post) as answer:
        buy_button(a).click()
    assert answer.value.status == 200, f"POST ticket answered {answer.value.status}"
    assert answer.value.request.headers.get("hx-request") == "true", "the gate's form was not submitted by htmx"

    expect_show(a)
    expect(nav_balance(a)).to_have_text(f"{5_000 - PRICE:,}")
    expect(nav_balance(a)).to_have_count(1)
    expect(page).to_have_url(re.compile(rf"/streams/{stream_id}$"))
    # The page's WebSocket to the show's channel connects after the swap.
    expect(page.locator(".player[ws-connect]")).to_have_count(1)
    wait_listening(a, hub, ".player")
    expect(page.locator("#viewer-count")).to_have_text(re.compile(r"^\d+ watching$"))
    expect(page.locator("#no-tips-yet")).to_be_visible()
    assert a.navigations == navigations, "buying a ticket navigated (the page reloaded or left)"

    # The ticket is stored, not just painted: a reload shows the show, and charges nothing again.
    page.reload()
    expect_show(a)
    expect(nav_balance(a)).to_have_text(f"{5_000 - PRICE:,}")
    assert_no_console_errors(a)


# ---- 2. tips on a private show reach ticket holders only ---------------------------

def test_a_tip_on_a_private_show_reaches_ticket_holders_only(open_page, hub, make_fan, new_creator, private_show,
                                                              client, api_headers):
    creator = new_creator()
    fan_a, fan_b = make_fan(balance=5_000), make_fan(balance=5_000)
    stream_id = private_show(creator)
    resp = client.post(f"/api/streams/{stream_id}/tickets/checkout", headers=api_headers(fan_a))
    assert resp.status_code == 201, resp.get_json()

    a = open_page(fan_a, f"/streams/{stream_id}")
    b = open_page(fan_b, f"/streams/{stream_id}")
    c = open_page(creator, f"/streams/{stream_id}")
    expect_show(a)
    expect_gate(b, balance="5,000")
    expect(c.page.locator("#tip-overlay")).to_have_count(1)
    expect(c.page.get_by_test_id("ticket-gate")).to_have_count(0)
    for p in (a, c):
        wait_listening(p, hub, ".player")
    wait_listening(b, hub, "[ws-connect='/ws/me']")  # B's page is live too, just not on the show

    message = f"Only for ticket holders {uuid.uuid4().hex[:6]}"
    dialog = open_tip_modal(a)
    dialog.get_by_role("radio", name="250", exact=True).check()
    dialog.get_by_label("Message").fill(message)
    dialog.get_by_role("button", name="Send tip").click()
    expect(a.page.get_by_test_id("tip-sent")).to_have_text(f"You tipped {creator.display_name} 250 tokens.")
    tip = tip_of(fan_a)
    assert (tip.amount, tip.message, tip.stream_id) == (250, message, stream_id)

    # The ticket holder and the creator get it live.
    for p in (a, c):
        expect(pop(p, tip.id)).to_be_visible()
        expect(pop(p, tip.id).locator(".tip-message")).to_have_text(message)
        expect(p.page.locator(f"#recent-tips #recent-tip-{tip.id}")).to_contain_text(message)

    # The fan without a ticket never does, however long we wait.
    deadline = time.monotonic() + NOT_DELIVERED_WAIT
    while time.monotonic() < deadline:
        assert b.page.locator(f"#tip-{tip.id}, #recent-tip-{tip.id}").count() == 0, \
            "a tip on a private show reached a viewer without a ticket"
        b.page.wait_for_timeout(100)
    expect(b.page.get_by_text(message)).to_have_count(0)
    assert message not in b.page.content()
    expect_gate(b, balance="5,000")

    for p in (a, c):
        assert_no_console_errors(p)
    assert_no_console_errors(b)


# ---- 3. not enough tokens: top up from the gate, then get in ---------------------------

def test_short_wallet_tops_up_from_the_gate_then_gets_in(open_page, hub, make_fan, new_creator, private_show):
    creator = new_creator()
    fan = make_fan(balance=400)
    shortfall = PRICE - 400
    stream_id = private_show(creator)
    f = open_page(fan, f"/streams/{stream_id}")
    page = f.page
    expect_gate(f, balance="400")
    navigations = f.navigations

    with page.expect_response(ticket_post) as answer:
        buy_button(f).click()
    assert answer.value.status == 402, f"POST ticket answered {answer.value.status}"
    error = page.get_by_test_id("gate-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text(f"Not enough tokens: {shortfall:,} more needed.")
    topup = error.get_by_test_id("topup-link")
    expect(topup).to_have_text(f"Buy {shortfall:,} tokens")
    # Next to the button: in the same form, right after it.
    expect(page.locator("form.gate-form [data-testid=buy-ticket] + [data-testid=gate-error]")).to_have_count(1)
    expect_gate(f, balance="400")
    expect(nav_balance(f)).to_have_text("400")

    topup.click()
    sheet = page.locator("[data-testid=ticket-gate] #ticket-topup #buy-sheet")
    expect(sheet).to_be_visible()
    expect(sheet.locator("#custom-amount")).to_have_value(str(shortfall))
    sheet.locator("form.custom-amount").get_by_role("button", name="Buy", exact=True).click()
    expect(nav_balance(f)).to_have_text(f"{PRICE:,}")
    # The purchase says `balance-changed`: the gate re-renders itself with the new
    # balance and without the stale "more needed" error (the sheet's job is done).
    expect_gate(f, balance=f"{PRICE:,}")
    expect(page.get_by_test_id("gate-error")).to_have_count(0)
    expect(page.locator("#buy-sheet")).to_have_count(0)

    with page.expect_response(ticket_post) as answer:
        buy_button(f).click()
    assert answer.value.status == 200, f"POST ticket answered {answer.value.status}"
    expect_show(f)
    expect(page.get_by_test_id("gate-error")).to_have_count(0)
    expect(page.locator("#buy-sheet")).to_have_count(0)
    expect(nav_balance(f)).to_have_text("0")
    wait_listening(f, hub, ".player")
    expect(page).to_have_url(re.compile(rf"/streams/{stream_id}$"))
    assert f.navigations == navigations, "the top-up or the checkout navigated away from the show"
    assert_no_console_errors(f, allowed=(PAYMENT_REQUIRED_LOG,))
    assert len(f.console_errors) == 1, f.console_errors  # the one 402, nothing else


# ---- 4. keyboard -------------------------------------------------------------------

def test_buy_ticket_from_the_keyboard(open_page, hub, make_fan, new_creator, private_show):
    creator = new_creator()
    fan = make_fan(balance=2_000)
    stream_id = private_show(creator)
    f = open_page(fan, f"/streams/{stream_id}")
    page = f.page
    button = buy_button(f)
    expect(button).to_be_enabled()

    # Reachable with Tab from the top of the page.
    page.locator("body").focus()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(40):
        page.keyboard.press("Tab")
        if button.evaluate("el => el === document.activeElement"):
            break
    expect(button).to_be_focused()

    navigations = f.navigations
    with page.expect_response(ticket_post) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200, f"POST ticket answered {answer.value.status}"
    expect_show(f)
    expect(nav_balance(f)).to_have_text(f"{2_000 - PRICE:,}")
    wait_listening(f, hub, ".player")
    assert f.navigations == navigations
    # The Tip button that replaced it is keyboard-usable too: Enter opens the modal.
    tip_button = page.get_by_test_id("tip-button")
    tip_button.focus()
    expect(tip_button).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert_no_console_errors(f)
