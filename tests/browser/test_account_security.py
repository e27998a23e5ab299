"""A fan manages their account's security in a real browser, on a phone:
change the password (a wrong one is shown by its field), see where they are
logged in, log out another browser, and log out everywhere. axe-core finds
no violations on /account."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import Page, axe_violations, fresh_pages

TIMEOUT = 5_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture()
def browse(browser, live_server):
    """browse(viewport=PHONE) → a Page in a fresh browser context; all closed afterwards."""
    for open_fresh in fresh_pages(browser, live_server, TIMEOUT):
        yield lambda viewport=PHONE: open_fresh(viewport)


def log_in(p: Page, user, password=None) -> None:
    page = p.page
    page.goto("/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(password or user.test_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/wallet$"))


def test_a_fan_changes_their_password_on_a_phone_and_other_browsers_are_logged_out(browse, make_fan):
    fan = make_fan()
    laptop = browse({"width": 1280, "height": 900})
    log_in(laptop, fan)
    phone = browse()
    log_in(phone, fan)
    page = phone.page
    page.goto("/account")
    sessions = page.locator("#access-lists section").first
    expect(sessions.locator(".chip", has_text="This browser")).to_be_visible()
    expect(sessions.get_by_role("button", name=re.compile(r"^Log out"))).to_have_count(1)  # the laptop
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/account-390.png", full_page=True)

    page.get_by_label("Current password").fill("not-my-password")
    page.get_by_label("New password").fill("brand-new-secret-9")
    page.get_by_role("button", name="Change password").click()
    error = page.locator("#currentPassword-error")
    expect(error).to_have_text("Your current password is not correct.")
    expect(page.get_by_label("Current password")).to_have_attribute("aria-invalid", "true")
    assert axe_violations(page) == []

    page.get_by_label("Current password").fill(fan.test_password)
    page.get_by_label("New password").fill("brand-new-secret-9")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#flash")).to_contain_text("Password changed")
    expect(page.locator("#access-lists section").first.get_by_role("button", name=re.compile(r"^Log out"))) \
        .to_have_count(0)  # the laptop's session is gone
    phone.assert_clean(allowed=(r"status of 422",))

    laptop.page.goto("/wallet")
    expect(laptop.page).to_have_url(re.compile(r"/login"))
    laptop.page.screenshot(path="/tmp/account-after-1280.png")


def test_log_out_everywhere_from_the_account_page(browse, make_fan):
    fan = make_fan()
    other = browse()
    log_in(other, fan)
    p = browse({"width": 1280, "height": 900})
    log_in(p, fan)
    page = p.page
    page.goto("/account")
    page.screenshot(path="/tmp/account-1280.png", full_page=True)
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("#flash")).to_contain_text("logged out everywhere")
    other.page.goto("/account")
    expect(other.page).to_have_url(re.compile(r"/login"))
    p.assert_clean()
