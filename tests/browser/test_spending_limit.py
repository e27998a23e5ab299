"""The daily spending cap in real browsers (issue 18): the fan sets it on /wallet (errors next
to the field), and a tip past it is refused with the reason and what is left today shown next
to the amount, on a phone; the ticket gate says the same."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.auth.models import User
from app.extensions import db
from app.protections import service as protections
from tests.browser.pages import assert_fits_and_accessible, logged_in_pages
from tests.browser.test_tips_live import TIMEOUT, WS_PROBE, log_in, open_tip_modal, tip_of

PHONE = {"width": 390, "height": 844}
REFUSED_403 = r"status of 403 \(FORBIDDEN\)"
REFUSED_422 = r"status of 422 \(UNPROCESSABLE ENTITY\)"


@pytest.fixture()
def open_page(browser, live_server):
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in)


def cap_of(user) -> int | None:
    db.session.expire_all()
    return db.session.get(User, user.id).daily_spend_limit_tokens


def test_the_fan_sets_a_limit_on_the_wallet_page(open_page, make_fan):
    fan = make_fan(balance=500)
    f = open_page(fan, "/wallet", PHONE)
    card = f.page.locator("#spend-limit")
    expect(card).to_contain_text("tips, tickets and calls stop once you've spent that many tokens today (UTC)")
    field = f.page.get_by_label("Limit per day (tokens)")
    field.fill("0")
    card.get_by_role("button", name="Save limit").click()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(f.page.locator("#daily-spend-limit-error")).to_contain_text("at least 1 token")
    assert cap_of(fan) is None
    field.fill("150")
    card.get_by_role("button", name="Save limit").click()
    expect(f.page.get_by_test_id("spend-limit-saved")).to_have_text("Saved: at most 150 tokens a day.")
    expect(f.page.get_by_test_id("spend-limit-status")).to_contain_text("150 left today")
    assert cap_of(fan) == 150
    assert_fits_and_accessible(f)
    f.assert_clean(allowed=(REFUSED_422,))


def test_a_tip_past_the_cap_shows_the_reason_and_what_is_left_next_to_the_amount(
        open_page, make_fan, new_creator, make_stream):
    creator = new_creator(name="Ada")
    stream = make_stream(creator, live=True)
    fan = make_fan(balance=1_000)
    protections.set_daily_limit(fan, 120)
    f = open_page(fan, f"/streams/{stream.id}", PHONE)
    dialog = open_tip_modal(f)
    expect(dialog.get_by_test_id("spend-left")).to_have_text("Your daily limit leaves 120 tokens today.")
    dialog.get_by_role("radio", name="250").check()
    dialog.get_by_role("button", name="Send tip").click()

    error = f.page.locator("#tip-amount-error")
    expect(error).to_contain_text("daily spending limit of 120 tokens: 120 tokens left today")
    expect(error).to_contain_text("resets at midnight UTC")
    expect(f.page.locator("#tip-custom")).to_have_attribute("aria-describedby", "tip-amount-error")
    assert tip_of(fan) is None
    assert_fits_and_accessible(f)
    f.page.get_by_role("dialog").get_by_role("radio", name="100").check()
    f.page.get_by_role("dialog").get_by_role("button", name="Send tip").click()
    expect(f.page.get_by_test_id("tip-sent")).to_have_text("You tipped Ada 100 tokens.")
    expect(f.page.get_by_test_id("spend-left")).to_have_text("Your daily limit leaves 20 tokens today.")
    f.assert_clean(allowed=(REFUSED_403,))


def test_the_ticket_gate_says_the_cap_refused_the_ticket(open_page, make_fan, new_creator, make_stream):
    show = make_stream(new_creator(), type_="private", ticket_price=300, live=True)
    fan = make_fan(balance=1_000)
    protections.set_daily_limit(fan, 200)
    f = open_page(fan, f"/streams/{show.id}", PHONE)
    f.page.get_by_test_id("buy-ticket").click()
    expect(f.page.get_by_test_id("gate-error")).to_contain_text("200 tokens left today")
    assert_fits_and_accessible(f)
    f.assert_clean(allowed=(REFUSED_403,))
