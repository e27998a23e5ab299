"""The stream page, the tip modal, the receipt and the navigation on a phone (390×844), and
that the desktop (1280×900) stays good: issue 17's "broken or rough today" items, one test each.

Debian's Chromium through Playwright against the live server (real PostgreSQL, real Redis,
real WebSockets). "Visible" here means a person can see it: inside the viewport once scrolled
to, and not cut off by an ancestor's `overflow: hidden` (the browser's own hit test finds the
element at each of its corners).
"""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from app.streams import service as streams
from app.tips import service as tips
from tests.browser.pages import DESKTOP, Page, assert_no_sideways_scroll, axe_violations, logged_in_pages
from tests.browser.test_tips_live import SYNCED, WS_PROBE, log_in, open_tip_modal, tip_of, wait_listening
from tests.payouts.conftest import earn  # noqa: F401  (the fixture)

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
PHONE = {"width": 390, "height": 844}
REFUSED_402 = r"status of 402 \(PAYMENT REQUIRED\)"  # the browser logs a deliberately refused request
REFUSED_422 = r"status of 422 \(UNPROCESSABLE"
ERROR_RED = "rgb(255, 92, 108)"  # --err in app.css


@pytest.fixture()
def open_page(browser, live_server):
    """open_page(user, path, viewport=DESKTOP) → a Page, logged in through /login, on `path`."""
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in)


def send_tip(sender, creator, amount, message="", stream_id=None):
    """A tip through the tips service (as the JSON API would send it)."""
    context = {"streamId": stream_id} if stream_id else None
    return tips.send_tip(sender, creator.id, amount, message, context, str(uuid.uuid4()), confirmed=True).tip


def assert_seen(locator, what: str) -> None:
    """`locator` is on screen once scrolled to and nothing clips it: the browser's hit test
    finds it at each corner (an element cut off by `overflow: hidden` fails here)."""
    expect(locator).to_be_visible()
    locator.scroll_into_view_if_needed()
    hidden = locator.evaluate("""(el) => {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) return ["no size"];
        // 6 px in from each corner: inside a rounded corner (a pill's too), still near the edge.
        const dx = Math.min(6, r.width / 2), dy = Math.min(6, r.height / 2);
        const points = [[r.left + dx, r.top + dy], [r.right - dx, r.top + dy], [r.left + dx, r.bottom - dy],
                        [r.right - dx, r.bottom - dy], [(r.left + r.right) / 2, (r.top + r.bottom) / 2]];
        return points.filter(([x, y]) => {
            const hit = document.elementFromPoint(x, y);
            return !(hit && (el === hit || el.contains(hit)));
        }).map(([x, y]) => `${Math.round(x)},${Math.round(y)}`);
    }""")
    assert not hidden, f"{what} is cut off or covered at {hidden}"


def assert_accessible(p: Page) -> None:
    bad = [v for v in axe_violations(p.page) if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {p.page.url}: {bad}"


def box(locator) -> dict:
    return locator.bounding_box()


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack)


# ---- 1. the private-show ticket gate --------------------------------------------------

@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_fan_can_buy_a_ticket_on_a_phone_and_sees_the_shortfall(open_page, make_fan, new_creator, make_stream,
                                                                   viewport):
    """The gate's heading, price and Buy button are not cut off by the 16:9 player box; after Buy
    with too few tokens the error and its "Buy tokens" link are visible, and the link works."""
    creator = new_creator()
    fan = make_fan(balance=100)
    stream = make_stream(creator, type_="private", ticket_price=1_500, live=True)
    p = open_page(fan, f"/streams/{stream.id}", viewport)
    page = p.page
    gate = page.get_by_test_id("ticket-gate")
    assert_seen(gate.get_by_role("heading", name="Private show"), "the gate's heading")
    assert_seen(page.get_by_test_id("buy-ticket"), "the Buy ticket button")

    page.get_by_test_id("buy-ticket").click()
    error = page.get_by_test_id("gate-error")
    expect(error).to_contain_text("1,400 more")
    assert_seen(error, "the gate's error")
    assert_seen(page.get_by_test_id("topup-link"), "the gate's Buy tokens link")
    page.get_by_test_id("topup-link").click()
    sheet = page.locator("#ticket-topup #buy-sheet")
    buy_tokens = sheet.locator("form.custom-amount").get_by_role("button", name="Buy", exact=True)
    assert_seen(buy_tokens, "the buy sheet's Buy button")
    assert_no_sideways_scroll(p)
    assert_accessible(p)

    # The top-up re-reads the gate (balance-changed); then the ticket is one tap.
    buy_tokens.click()
    expect(page.get_by_test_id("gate-balance")).to_have_text("1,500")
    assert_seen(page.get_by_test_id("buy-ticket"), "the Buy ticket button after the top-up")
    page.get_by_test_id("buy-ticket").click()
    expect(page.get_by_test_id("ticket-held")).to_be_visible()
    expect(page.get_by_test_id("tip-button")).to_be_visible()
    p.assert_clean(allowed=(REFUSED_402,))


# ---- 2. the receipt page --------------------------------------------------------------

@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_tip_receipt_fits_the_phone_and_names_the_creator_and_the_stream(open_page, make_fan, new_creator,
                                                                           make_stream, viewport):
    """No sideways scroll; the heading sits on top of the card, the back link inside it; the
    receipt of a tip names its creator and links its stream."""
    creator = new_creator(name="Ada Receipts")
    fan = make_fan(balance=500)
    stream = make_stream(creator, title="Late night <b>jazz</b>", live=True)
    tip = send_tip(fan, creator, 120, stream_id=stream.id)
    p = open_page(fan, f"/wallet/receipts/{tip.transfer_id}", viewport)
    page = p.page
    assert_no_sideways_scroll(p)

    card = page.locator("main .card").first
    heading = card.get_by_role("heading", level=1)
    facts = card.locator("dl")
    back = card.get_by_role("link", name=re.compile("Back to wallet"))
    card_box, heading_box, facts_box, back_box = box(card), box(heading), box(facts), box(back)
    assert inside(heading_box, card_box) and inside(back_box, card_box) and inside(facts_box, card_box)
    assert heading_box["y"] + heading_box["height"] <= facts_box["y"], "the heading is not above the facts"
    assert facts_box["y"] + facts_box["height"] <= back_box["y"], "the back link is not below the facts"

    what = card.locator("dd").first
    expect(what).to_have_text("Tip to Ada Receipts during Late night <b>jazz</b>")
    expect(what.get_by_role("link", name="Late night <b>jazz</b>")).to_have_attribute("href", f"/streams/{stream.id}")
    assert_accessible(p)
    p.assert_clean()


# ---- 3. navigation: a menu button; earnings for creators -----------------------------

def test_phone_navigation_is_one_row_with_a_menu_button(open_page, make_fan):
    """At 390 px the nav is one row (brand, balance, menu button); the menu button is a real
    button (aria-expanded, aria-controls) that opens from the keyboard and closes on Escape and
    on a click outside."""
    fan = make_fan(balance=1_000)
    p = open_page(fan, "/wallet", PHONE)
    page = p.page
    nav = page.get_by_role("navigation", name="Main")
    toggle = nav.get_by_role("button", name="Menu")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    menu = page.locator("#" + toggle.get_attribute("aria-controls"))
    spending = nav.get_by_role("link", name="Spending")
    expect(spending).to_be_hidden()
    # /ws/me's connect sync swaps #nav-balance for a fresh copy: measure the one that stays.
    expect(page.locator('[ws-connect="/ws/me"]')).to_have_attribute("data-test-ws-messages", SYNCED)
    assert_seen(page.locator("#nav-balance"), "the nav balance")
    assert box(nav)["height"] < 64, f"the nav wraps: {box(nav)['height']} px tall"
    assert_no_sideways_scroll(p)

    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(menu).to_be_visible()
    assert_seen(spending, "the Spending link in the open menu")
    assert_seen(nav.get_by_role("button", name="Log out"), "Log out in the open menu")
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(spending).to_be_hidden()
    expect(toggle).to_be_focused()

    toggle.click()
    expect(spending).to_be_visible()
    page.mouse.click(PHONE["width"] / 2, PHONE["height"] - 10)  # outside the menu
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(spending).to_be_hidden()

    toggle.click()
    spending.click()
    expect(page).to_have_url(re.compile(r"/spending$"))
    assert_accessible(p)
    p.assert_clean()


def test_a_creator_with_seven_digit_earnings_and_unread_notifications_keeps_a_one_row_phone_nav(
        open_page, new_creator, make_user, earn):
    """The phone bar holds the earnings pill, the Tips menu, the bell and the menu button in
    one row, whatever the figure: nothing spills past the screen's edge."""
    from app.notifications.service import notify_many
    from sqlalchemy import literal, select

    creator = new_creator()
    for _ in range(16):  # a tip is at most MAX_TIP_TOKENS (100,000): 16 × 80,000 earned
        earn(creator, 80_000)
    notify_many(select(literal(creator.id)), "live", "A creator you follow is live", "/", "probe")
    p = open_page(creator, "/dashboard", PHONE)
    nav = p.page.get_by_role("navigation", name="Main")
    expect(p.page.get_by_test_id("nav-earnings")).to_have_text(re.compile(r"^\s*1,280,000\s*earned\s*$"))
    # /ws/me's connect sync swaps the pill and the bell for fresh copies: measure those.
    expect(p.page.locator('[ws-connect="/ws/me"]')).to_have_attribute("data-test-ws-messages", SYNCED)
    for item in (p.page.get_by_test_id("nav-earnings"), nav.get_by_role("button", name="Menu"),
                 nav.get_by_role("link", name=re.compile("^Notifications"))):
        assert_seen(item, "a phone nav item")
        assert box(item)["x"] + box(item)["width"] <= PHONE["width"], "a nav item spills past the screen"
    assert box(nav)["height"] < 64, f"the creator's nav wraps: {box(nav)['height']} px tall"
    assert_no_sideways_scroll(p)
    assert_accessible(p)
    p.assert_clean()


def test_desktop_navigation_shows_every_link_without_a_menu_button(open_page, make_fan):
    fan = make_fan(balance=1_000)
    p = open_page(fan, "/wallet", DESKTOP)
    nav = p.page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("button", name="Menu")).to_be_hidden()
    for name in ("Discover", "Spending", fan.display_name):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(nav.get_by_role("button", name="Log out")).to_be_visible()
    assert box(nav)["height"] < 64, "the desktop nav wraps"
    p.assert_clean()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_creators_nav_shows_their_earnings_live(open_page, hub, make_fan, new_creator, run_jobs, viewport):
    """A creator's nav pill shows what they earned (labeled), not their empty wallet, and
    follows each tip over /ws/me (the refresh the tip queued, run as the worker would)."""
    creator = new_creator()
    fan = make_fan(balance=10_000)
    send_tip(fan, creator, 5_000)  # 4,000 to the creator
    p = open_page(creator, "/dashboard", viewport)
    page = p.page
    earned = page.get_by_test_id("nav-earnings")
    expect(earned).to_have_text(re.compile(r"^\s*4,000\s*earned\s*$"))
    assert_seen(earned, "the creator's earnings pill")
    wait_listening(p, hub, '[ws-connect="/ws/me"]')
    send_tip(fan, creator, 1_000)  # 800 more
    run_jobs()
    expect(earned).to_have_text(re.compile(r"^\s*4,800\s*earned\s*$"))
    if viewport is PHONE:
        nav = page.get_by_role("navigation", name="Main")
        assert box(nav)["height"] < 64, f"the creator's nav wraps: {box(nav)['height']} px tall"
        assert_no_sideways_scroll(p)
    p.assert_clean()


# ---- 4. stacked tip pop-ups ------------------------------------------------------------

def test_stacked_tip_pops_stay_inside_the_video_box_on_a_phone(open_page, hub, make_fan, new_creator, make_stream):
    """Four tips with long messages at once: every pop shown lies inside the player, the
    newest is shown whole, and the placeholder text does not show through (opaque pops)."""
    creator = new_creator()
    fan, viewer = make_fan(balance=10_000), make_fan()
    stream = make_stream(creator, live=True)
    p = open_page(viewer, f"/streams/{stream.id}", PHONE)
    page = p.page
    wait_listening(p, hub, ".player")
    ids = [send_tip(fan, creator, 300, f"Tip number {i}: what a wonderful show tonight, thank you so much!",
                    stream.id).id for i in range(4)]
    newest = page.locator(f"#tip-overlay #tip-{ids[-1]}")
    expect(newest).to_be_visible()
    # The overlay lets clicks through (pointer-events: none), so no hit test: boxes instead.
    page.locator(".player").scroll_into_view_if_needed()
    player, overlay = box(page.locator(".player")), box(page.locator("#tip-overlay"))
    assert inside(overlay, player), f"the overlay is larger than the player: {overlay} vs {player}"
    assert inside(box(newest), overlay), f"the newest pop is cut off: {box(newest)} vs {overlay}"
    assert player["y"] >= 0 and player["y"] + player["height"] <= PHONE["height"], "the player is off screen"
    for pop in page.locator("#tip-overlay .tip-pop").all():
        if pop.is_visible():
            assert inside(box(pop), overlay), f"a tip pop is cut off or sticks out: {box(pop)} vs {overlay}"
        alpha = pop.evaluate("(el) => getComputedStyle(el).backgroundColor")
        assert not alpha.startswith("rgba"), f"a tip pop is see-through ({alpha})"
    p.assert_clean()


# ---- 5. the tip modal ------------------------------------------------------------------

def test_tip_modal_on_a_phone_shows_the_balance_and_chips_and_marks_a_bad_amount(open_page, make_fan,
                                                                                new_creator, make_stream):
    """"You have N tokens" up front; the presets are chips (no radio circles) that remain radios
    for the keyboard; a bad custom amount is an error next to the field (error colour,
    aria-invalid, aria-describedby), not a green hint."""
    creator = new_creator()
    fan = make_fan(balance=1_250)
    stream = make_stream(creator, live=True)
    p = open_page(fan, f"/streams/{stream.id}", PHONE)
    dialog = open_tip_modal(p)
    expect(dialog.get_by_test_id("tip-balance")).to_have_text("You have 1,250 tokens")

    radio = dialog.get_by_role("radio", name="100", exact=True)
    expect(radio).to_be_checked()
    expect(radio).to_be_focused()
    assert radio.evaluate("(el) => getComputedStyle(el).opacity") == "0", "the raw radio circle shows"
    chip = dialog.locator("label.chip", has_text="100")
    assert_seen(chip, "the 100 chip")
    assert chip.evaluate("(el) => getComputedStyle(el).borderTopColor") != chip.evaluate(
        "(el) => getComputedStyle(el.parentElement.querySelector('label.chip:not(:has(:checked))')).borderTopColor"
    ), "the chosen chip looks like the others"
    p.page.keyboard.press("ArrowRight")
    expect(dialog.get_by_role("radio", name="250", exact=True)).to_be_checked()
    expect(dialog.locator("#tip-preview")).to_have_text("Creator receives 200 tokens")

    custom = dialog.locator("#tip-custom")
    custom.press_sequentially("12abc")
    expect(custom).to_have_attribute("aria-invalid", "true")
    described = custom.get_attribute("aria-describedby")
    error = p.page.locator("#" + described)
    expect(error).to_contain_text("whole number")
    assert error.evaluate("(el) => getComputedStyle(el).color") == ERROR_RED
    assert_seen(error, "the amount's error")
    custom.fill("")
    custom.press_sequentially("300")
    expect(custom).not_to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#tip-preview")).to_have_text("Creator receives 240 tokens")
    assert_accessible(p)
    p.assert_clean()


def test_topping_up_in_the_tip_modal_clears_the_shortfall_and_keeps_the_sheet_apart(open_page, make_fan,
                                                                                  new_creator, make_stream):
    """After buying the missing tokens inside the modal the "Not enough tokens" error goes, the
    balance line follows, and the buy sheet sits apart from Send tip; then the tip goes through."""
    creator = new_creator()
    fan = make_fan(balance=100)
    stream = make_stream(creator, live=True)
    p = open_page(fan, f"/streams/{stream.id}", PHONE)
    page = p.page
    dialog = open_tip_modal(p)
    dialog.locator("#tip-custom").press_sequentially("500")
    dialog.get_by_role("button", name="Send tip").click()
    expect(page.locator("#tip-amount-error")).to_contain_text("400 more needed")
    page.get_by_test_id("topup-link").click()
    sheet = page.locator("#tip-topup #buy-sheet")
    expect(sheet).to_be_visible()
    send, sheet_box = box(page.get_by_role("button", name="Send tip")), box(sheet)
    gap = sheet_box["y"] - (send["y"] + send["height"])
    assert gap >= 12, f"the buy sheet butts against Send tip ({gap:.1f} px apart)"

    sheet.locator("form.custom-amount").get_by_role("button", name="Buy", exact=True).click()
    expect(page.locator("#buy-sheet .alert.success")).to_have_text("Added 400 tokens to your wallet.")
    expect(page.locator("#tip-amount-error")).to_have_count(0)
    expect(page.get_by_test_id("tip-balance")).to_have_text("You have 500 tokens")
    expect(page.locator("#tip-custom")).to_have_value("500")
    expect(page.locator("#tip-custom")).not_to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Send tip").click()
    expect(page.get_by_test_id("tip-sent")).to_have_text(f"You tipped {creator.display_name} 500 tokens.")
    assert tip_of(fan).amount == 500
    p.assert_clean(allowed=(REFUSED_402,))


def test_after_a_tip_the_form_stays_ready_to_tip_again(open_page, make_fan, new_creator, make_stream):
    """The confirmation shows beside a form that is ready at once: a second tip needs no extra click."""
    creator = new_creator()
    fan = make_fan(balance=1_000)
    stream = make_stream(creator, live=True)
    p = open_page(fan, f"/streams/{stream.id}", PHONE)
    page = p.page
    dialog = open_tip_modal(p)
    dialog.get_by_role("radio", name="50", exact=True).check()
    dialog.get_by_role("button", name="Send tip").click()
    expect(page.get_by_test_id("tip-sent")).to_have_text(f"You tipped {creator.display_name} 50 tokens.")
    expect(page.get_by_test_id("tip-balance")).to_have_text("You have 950 tokens")
    send = page.get_by_role("dialog").get_by_role("button", name="Send tip")
    assert_seen(send, "Send tip after a tip")
    first = tip_of(fan).id
    send.click()
    expect(page.get_by_test_id("tip-balance")).to_have_text("You have 900 tokens")
    second = tip_of(fan)
    assert second.id != first and second.amount == 50
    expect(page.locator("#nav-balance")).to_have_text("900")
    assert_accessible(p)
    p.assert_clean()


# ---- 6. an ended show is no dead end -------------------------------------------------

def expect_ended(p: Page, creator) -> None:
    page = p.page
    expect(page.get_by_test_id("tip-button")).to_be_hidden()
    expect(page.get_by_test_id("unmute")).to_be_hidden()
    expect(page.locator("#viewer-count")).to_be_hidden()
    next_steps = page.get_by_test_id("next-steps")
    assert_seen(next_steps, "the next steps")
    expect(next_steps.get_by_role("link", name=re.compile(re.escape(creator.display_name)))).to_have_attribute(
        "href", f"/c/{creator.handle}")
    expect(next_steps.get_by_role("link", name="Discover more live streams")).to_have_attribute("href", "/")


def test_an_ended_show_offers_next_steps_on_load(open_page, make_fan, new_creator, make_stream):
    creator = new_creator()
    fan = make_fan(balance=100)
    stream = make_stream(creator, live=True)
    streams.change_status(creator, stream.id, "end")
    p = open_page(fan, f"/streams/{stream.id}", PHONE)
    expect(p.page.locator("#stream-status")).to_have_text("Ended")
    expect_ended(p, creator)
    assert_no_sideways_scroll(p)
    assert_accessible(p)
    p.assert_clean()


@pytest.mark.parametrize("action", ["end", "cancel"])
def test_a_show_ending_while_watched_turns_tip_off_and_offers_next_steps(open_page, hub, make_fan, new_creator,
                                                                         make_stream, action):
    """The status push over the socket is enough: no reload."""
    creator = new_creator()
    fan = make_fan(balance=100)
    stream = make_stream(creator, live=True)
    p = open_page(fan, f"/streams/{stream.id}", PHONE)
    page = p.page
    wait_listening(p, hub, ".player")
    expect(page.get_by_test_id("tip-button")).to_be_visible()
    expect(page.get_by_test_id("next-steps")).to_be_hidden()
    expect(page.locator("#viewer-count")).to_have_text(re.compile("watching"))
    streams.change_status(creator, stream.id, action)
    expect(page.locator("#stream-status")).to_have_text("Ended" if action == "end" else "Canceled")
    expect_ended(p, creator)
    assert p.navigations == 2  # the login page, then the stream: no reload
    p.assert_clean()
