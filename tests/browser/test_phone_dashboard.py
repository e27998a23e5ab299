"""The creator's dashboard and the fan's spending on a phone (issue 17, "Dashboard and
spending on the phone"), checked at 1280×900 too.

The range switcher is one row of four segments; the chart fills the card's width at a
readable height with every label inside it and none overlapping; every table that can
scroll sideways is a labelled, keyboard-focusable region, and one that does scroll says
so. Money is spread over a month with the app's clock so the chart has many days.
"""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from app.tips import service as tips
from tests.browser.pages import DESKTOP, logged_in_pages, assert_fits_and_accessible
from tests.browser.test_tips_live import WS_PROBE, log_in

PHONE = {"width": 390, "height": 844}
TIMEOUT = 5_000

SWITCHER_ROWS = """(nav) => new Set([...nav.querySelectorAll('a')].map(a => Math.round(a.getBoundingClientRect().top))).size"""
# Each text of the chart: inside the SVG's box, and not overlapping the visible text beside it.
CHART_TEXT = """(svg) => {
  const box = svg.getBoundingClientRect();
  const shown = [...svg.querySelectorAll('text')].filter(t => getComputedStyle(t).display !== 'none')
    .map(t => t.getBoundingClientRect());
  const outside = shown.filter(r => r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.bottom > box.bottom + 0.5).length;
  const baseline = Math.max(...[...svg.querySelectorAll('line')].map(l => l.getBoundingClientRect().bottom));
  const days = shown.filter(r => r.top >= baseline - 1).sort((a, b) => a.left - b.left);  // below the axis
  const overlaps = days.slice(1).filter((r, i) => r.left < days[i].right).length;
  return {outside, overlaps, labels: days.length, height: box.height, width: box.width};
}"""
TABLE_WRAPS = """() => [...document.querySelectorAll('.table-wrap')].filter(w => w.offsetParent !== null).map(w => ({
  role: w.getAttribute('role'), tabindex: w.getAttribute('tabindex'),
  named: !!(w.getAttribute('aria-label') || w.getAttribute('aria-labelledby')),
  overflows: w.scrollWidth > w.clientWidth + 1, marked: w.hasAttribute('data-overflows'),
  cue: getComputedStyle(w, '::before').content}))"""


@pytest.fixture()
def open_page(browser, live_server):
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in)


@pytest.fixture()
def money(make_fan, new_creator, clock):
    """(fan, creator): twelve tips from a fan with a long name, then 24 days later (the
    dashboards' clock), so the chart has a month of days to label."""
    creator = new_creator(name=f"Dana {uuid.uuid4().hex[:4]}")
    fan = make_fan(balance=50_000, name=f"Finnegan Alexander-Montgomery {uuid.uuid4().hex[:4]}")
    for i in range(12):
        tips.send_tip(fan, creator.id, 100 + 37 * i, f"day {i}", None, f"t-{uuid.uuid4()}")
        clock.advance(days=2)
    return fan, creator


def check_switcher(p) -> None:
    nav = p.page.get_by_role("navigation", name="Date range")
    assert nav.evaluate(SWITCHER_ROWS) == 1, "the range switcher wraps onto more than one row"
    for name in ("Today", "7 days", "30 days", "All time"):
        expect(nav.get_by_role("link", name=name)).to_be_in_viewport(ratio=1)


def check_chart(p, test_id: str, phone: bool) -> None:
    chart = p.page.get_by_test_id(test_id).evaluate(CHART_TEXT)
    assert chart["outside"] == 0, f"chart text outside the chart: {chart}"
    assert chart["overlaps"] == 0, f"day labels overlap: {chart}"
    assert chart["labels"] >= 3, chart
    assert chart["height"] >= (200 if phone else 240), f"the chart is too small to read: {chart}"


def check_tables(p, overflow_expected: bool) -> None:
    wraps = p.page.evaluate(TABLE_WRAPS)
    assert wraps, "no table on the page"
    for w in wraps:
        assert (w["role"], w["tabindex"], w["named"]) == ("region", "0", True), w
        assert w["marked"] == w["overflows"], w
        if w["overflows"]:
            assert "Scroll sideways" in w["cue"], w
    if overflow_expected:
        assert any(w["overflows"] for w in wraps), "expected a table wider than the phone"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_dashboard_fits_the_screen_switcher_in_one_row_chart_readable_tables_labelled(open_page, money,
                                                                                          viewport):
    _, creator = money
    p = open_page(creator, "/dashboard", viewport=viewport)
    phone = viewport == PHONE
    check_switcher(p)
    check_chart(p, "earnings-chart", phone)
    p.page.get_by_test_id("earnings-chart").screenshot(path=f"/tmp/{'phone' if phone else 'desktop'}-chart.png")
    p.page.get_by_text("Show the numbers as a table").click()
    check_tables(p, overflow_expected=False)
    p.page.screenshot(path=f"/tmp/{'phone' if phone else 'desktop'}-dashboard.png", full_page=True)
    # The range switches in place, and the chart stays inside its box (one day: centred label).
    p.page.get_by_role("link", name="Today").click()
    expect(p.page.get_by_role("link", name="Today")).to_have_attribute("aria-current", "page")
    check_switcher(p)
    assert p.page.get_by_test_id("earnings-chart").evaluate(CHART_TEXT)["outside"] == 0
    assert_fits_and_accessible(p)
    p.assert_clean()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_spending_fits_the_screen_and_a_table_wider_than_it_says_it_scrolls(open_page, money, viewport):
    fan, _ = money
    p = open_page(fan, "/spending", viewport=viewport)
    phone = viewport == PHONE
    check_switcher(p)
    check_tables(p, overflow_expected=phone)  # the month table has six columns
    if phone:
        months = p.page.get_by_role("region", name="Month by month table")
        months.focus()
        expect(months).to_be_focused()
        before = months.evaluate("el => el.scrollLeft")
        p.page.keyboard.press("ArrowRight")
        p.page.wait_for_function("(before) => document.activeElement.scrollLeft > before", arg=before)
    p.page.screenshot(path=f"/tmp/{'phone' if phone else 'desktop'}-spending.png", full_page=True)
    assert_fits_and_accessible(p)
    p.assert_clean()
