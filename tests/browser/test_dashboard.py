"""The dashboards in a real browser: a creator switches the range with the
keyboard and the figures change in place; a fan's tip lands live in the
dashboard's recent tips; the fan's /spending lists it with a receipt that opens.

Debian's Chromium through Playwright against the live server (real PostgreSQL,
Redis and WebSockets). Time is moved with the app's clock (the dashboards'
"now"), so money made just now is "two days ago" and the ranges differ.
"""
from __future__ import annotations

import re
import uuid
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import expect

from app.tips import service as tips
from tests.browser.pages import logged_in_pages
from tests.browser.test_tips_live import WS_PROBE, log_in, wait_listening

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
LIVE_TIP = 1_000  # ms: a tip reaches the creator's open dashboard within this
DASHBOARD_SHOT = "/tmp/dashboard.png"
SPENDING_SHOT = "/tmp/spending.png"


@pytest.fixture()
def open_page(browser, live_server):
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in)


def tab_to(p, element_id: str, max_presses: int = 60) -> None:
    """Press Tab until the element with `element_id` has the keyboard focus."""
    for _ in range(max_presses):
        p.page.keyboard.press("Tab")
        if p.page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} never got the focus by Tab")


def same_document(p) -> bool:
    return p.page.evaluate("window.dashboardTestMarker") == "same document"


def earned(p):
    return p.page.get_by_test_id("earned-total")


def test_creator_switches_range_by_keyboard_in_place_and_sees_a_tip_arrive_live(
        open_page, hub, client, api_headers, make_fan, new_creator, clock):
    creator = new_creator(name=f"Dana {uuid.uuid4().hex[:4]}")
    fan = make_fan(balance=5_000, name=f"Fin {uuid.uuid4().hex[:4]}")
    old_tip = tips.send_tip(fan, creator.id, 500, "earlier", None, f"t-{uuid.uuid4()}").tip
    clock.advance(days=2)  # the dashboards' "now": that tip was two UTC days ago

    c = open_page(creator, "/dashboard")
    expect(c.page.get_by_role("heading", name="Your earnings")).to_be_visible()
    expect(c.page.get_by_text("Days are UTC", exact=False).first).to_be_visible()
    expect(earned(c)).to_have_text(re.compile(r"^400\b"))  # 30 days (the default): the creator's 80%
    expect(c.page.locator(f"#dashboard-tips #dash-tip-{old_tip.id}")).to_contain_text(
        f"{fan.display_name} tipped 500 tokens")
    # A full load would start a new document and lose this marker; htmx swaps keep it.
    c.page.evaluate("window.dashboardTestMarker = 'same document'")

    # Today: nothing yet. Tab to the link, Enter: htmx swaps the body and pushes the URL.
    tab_to(c, "dashboard-body-range-today")
    with c.page.expect_response(lambda r: urlsplit(r.url).path == "/dashboard") as answer:
        c.page.keyboard.press("Enter")
    assert answer.value.status == 200 and answer.value.request.headers.get("hx-request") == "true"
    expect(earned(c)).to_have_text(re.compile(r"^0\b"))
    expect(c.page.locator("#dashboard-body-range-today")).to_have_attribute("aria-current", "page")
    expect(c.page).to_have_url(re.compile(r"/dashboard\?range=today$"))
    expect(c.page.get_by_role("heading", name="No earnings today")).to_be_visible()
    # Focus stays on the pressed link (same id after the swap): the next Tab reaches "7 days".
    assert c.page.evaluate("document.activeElement.id") == "dashboard-body-range-today"
    c.page.keyboard.press("Tab")
    assert c.page.evaluate("document.activeElement.id") == "dashboard-body-range-7d"
    c.page.keyboard.press("Enter")
    expect(earned(c)).to_have_text(re.compile(r"^400\b"))
    expect(c.page.get_by_test_id("earned-tips")).to_have_text("400")
    expect(c.page.locator("#dashboard-body-range-7d")).to_have_attribute("aria-current", "page")
    expect(c.page).to_have_url(re.compile(r"/dashboard\?range=7d$"))
    expect(c.page.get_by_test_id("earnings-chart").locator(".bar")).to_have_count(1)
    assert same_document(c), "switching the range reloaded the page"

    # A fan tips while the dashboard is open: the tip lands at the top of the recent tips list.
    wait_listening(c, hub, "[ws-connect='/ws/me']")
    message = f"live {uuid.uuid4().hex[:6]}"
    resp = client.post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 250, "message": message},
                       headers=api_headers(fan, **{"Idempotency-Key": f"k-{uuid.uuid4()}"}))
    assert resp.status_code == 201, resp.get_json()
    tip_id = resp.get_json()["tip"]["id"]
    live = c.page.locator(f"#dashboard-tips #dash-tip-{tip_id}")
    expect(live).to_contain_text(f"{fan.display_name} tipped 250 tokens", timeout=LIVE_TIP)
    expect(live.locator(".tip-message")).to_have_text(message)
    expect(c.page.locator("#dashboard-tips li").first).to_have_id(f"dash-tip-{tip_id}")
    expect(c.page.locator("#dashboard-tips li")).to_have_count(2)
    expect(c.page.locator(".dash-tips-empty")).to_be_hidden()
    expect(c.page.locator("#call-sink *")).to_have_count(0)  # the fallback target stays empty
    # Switching the range again keeps the live list (it is outside the swapped body).
    c.page.keyboard.press("Shift+Tab")
    c.page.keyboard.press("Enter")  # back to Today
    expect(c.page.locator("#dashboard-body-range-today")).to_have_attribute("aria-current", "page")
    expect(live).to_be_visible()
    assert same_document(c)

    c.page.goto("/dashboard?range=7d")
    expect(c.page.get_by_test_id("earnings-chart").locator(".bar")).to_have_count(1)
    c.page.screenshot(path=DASHBOARD_SHOT, full_page=True, animations="disabled")
    c.assert_clean()


def test_a_link_in_freshly_swapped_content_works_at_once(open_page, new_creator):
    """htmx binds swapped-in links when it settles; with its default 20 ms settle delay a
    click in between followed the bare href (a full page load). The base template sets
    no delay, so a click in the very next task after the swap stays in place."""
    creator = new_creator()
    c = open_page(creator, "/dashboard")
    c.page.evaluate("window.dashboardTestMarker = 'same document'")
    # After the swap that "Today" causes, click "7 days" from a zero-delay timer: before any
    # settle timer could run.
    c.page.evaluate("""() => document.addEventListener("htmx:afterSwap", () => setTimeout(
        () => document.getElementById("dashboard-body-range-7d").click(), 0), {once: true})""")
    with c.page.expect_response(lambda r: urlsplit(r.url).query == "range=7d") as answer:
        c.page.locator("#dashboard-body-range-today").click()
    assert answer.value.request.headers.get("hx-request") == "true", "the click followed the bare href"
    expect(c.page.locator("#dashboard-body-range-7d")).to_have_attribute("aria-current", "page")
    assert same_document(c), "the click reloaded the page"
    c.assert_clean()


def test_range_links_work_without_javascript(browser, live_server, new_creator, make_fan):
    creator = new_creator()
    fan = make_fan(balance=1_000)
    tips.send_tip(fan, creator.id, 100, "", None, f"t-{uuid.uuid4()}")
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    context.set_default_timeout(TIMEOUT)
    try:
        page = context.new_page()
        page.goto("/login?next=/dashboard")
        page.get_by_label("Email").fill(creator.email)
        page.get_by_label("Password").fill(creator.test_password)
        page.get_by_role("button", name="Log in", exact=True).click()
        expect(page).to_have_url(re.compile(r"/dashboard$"))
        expect(page.get_by_test_id("earned-total")).to_have_text(re.compile(r"^80\b"))
        page.get_by_role("link", name="All time").click()
        expect(page).to_have_url(re.compile(r"/dashboard\?range=all$"))
        expect(page.locator("#dashboard-body-range-all")).to_have_attribute("aria-current", "page")
        expect(page.get_by_test_id("earned-total")).to_have_text(re.compile(r"^80\b"))
        expect(page.get_by_test_id("earnings-chart").locator(".bar")).to_have_count(1)
    finally:
        context.close()


def test_fan_spending_lists_the_tip_with_a_receipt_that_opens(open_page, client, api_headers, make_fan,
                                                            new_creator):
    creator = new_creator(name=f"Rae {uuid.uuid4().hex[:4]}")
    fan = make_fan(balance=2_000)
    resp = client.post("/api/tips/send", json={"toCreatorId": creator.id, "amountTokens": 300},
                       headers=api_headers(fan, **{"Idempotency-Key": f"k-{uuid.uuid4()}"}))
    assert resp.status_code == 201, resp.get_json()

    f = open_page(fan, "/spending")
    expect(f.page.get_by_role("heading", name="Your spending")).to_be_visible()
    expect(f.page.get_by_test_id("spent-total")).to_have_text(re.compile(r"^300\b"))
    expect(f.page.get_by_test_id("spent-tips")).to_have_text("300")
    line = f.page.get_by_test_id("spending-lines").locator("tbody tr").filter(has_text=creator.display_name)
    expect(line).to_have_count(1)
    expect(line).to_contain_text("300")
    f.page.screenshot(path=SPENDING_SHOT, full_page=True, animations="disabled")

    with f.page.expect_navigation() as nav:
        line.get_by_role("link", name="Receipt").click()
    assert nav.value is not None and nav.value.status == 200
    expect(f.page.get_by_text("300").first).to_be_visible()
    f.assert_clean()


def test_a_hostile_range_shows_its_error_by_the_switcher_and_a_fan_is_refused(open_page, make_fan, new_creator):
    c = open_page(new_creator(), "/dashboard")
    answer = c.page.goto("/dashboard?range=" + quote("<script>window.pwned = 1</script>"))
    assert answer is not None and answer.status == 422
    error = c.page.get_by_role("alert").filter(has_text="Choose a range")
    expect(error).to_contain_text("instead")  # the default range is shown, the error next to its switcher
    expect(c.page.locator("#dashboard-body-range-30d")).to_have_attribute("aria-current", "page")
    assert c.page.evaluate("window.pwned") is None  # the text was escaped, never run
    c.page.screenshot(path="/tmp/dashboard-bad-range.png", full_page=False, animations="disabled")

    f = open_page(make_fan(), "/spending")
    for path in ("/dashboard", "/platform"):
        answer = f.page.goto(path)
        assert answer is not None and answer.status == 403, path


@pytest.mark.parametrize("size", [(390, 844), (1280, 900)], ids=["phone", "desktop"])
def test_the_operators_platform_page_loads_every_money_section_and_fits_a_phone(open_page, make_user, size):
    """/platform with its sections (purchases, calls, payouts: each loaded from its
    feature's own route) fits the screen at phone and desktop sizes, axe clean."""
    from app.extensions import db
    from tests.browser.pages import axe_violations
    operator = make_user("fan", name="Olga Operator")
    operator.is_operator = True
    db.session.commit()
    p = open_page(operator, "/platform")
    p.page.set_viewport_size({"width": size[0], "height": size[1]})
    for heading in ("Purchases", "Calls", "Payouts"):
        expect(p.page.get_by_role("heading", name=re.compile(f"^{heading}"))).to_be_visible()
    expect(p.page.get_by_test_id("debt-outstanding")).to_be_visible()
    assert p.page.evaluate("document.documentElement.scrollWidth") <= size[0]
    assert axe_violations(p.page) == []
    p.page.screenshot(path=f"/tmp/platform-{size[0]}.png", full_page=True, animations="disabled")
    p.assert_clean()
