"""A follower's bell in a real browser (issue 17): a creator goes live, the job a worker
runs notifies the follower, whose open page shows the count without a reload; the
notifications page lists it linking to the stream; "Mark all as read" zeroes the bell.
At phone (390×844) and desktop (1280×900) size, axe-clean, no sideways scroll."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from redis import Redis
from rq import Queue, SimpleWorker

from app import jobs
from app.follows import service as follows
from app.streams import service as streams
from tests.browser.pages import Page, axe_violations, logged_in_pages
from tests.browser.test_tips_live import WS_PROBE, log_in, wait_listening

TIMEOUT = 5_000  # ms: generous for a loaded CI box, never a sleep
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


@pytest.fixture()
def open_page(browser, live_server):
    """open_page(user, path, viewport) → a Page logged in on the live server."""
    for open_ in logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in):
        yield lambda user, path, viewport: open_(user, path, VIEWPORTS[viewport])


def assert_fits(p: Page) -> None:
    """axe finds nothing, and the page does not scroll sideways."""
    assert axe_violations(p.page) == [], p.page.url
    assert p.page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), \
        f"{p.page.url} scrolls sideways"


def run_worker(services) -> None:
    """What the worker process does, driven by the test: run the queued jobs (RQ, real Redis)."""
    queue = Queue(jobs.queue_name(), connection=Redis.from_url(services[1]))
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_going_live_rings_the_followers_bell_live_and_mark_all_read_zeroes_it(
        open_page, hub, services, make_fan, make_creator, make_stream, viewport):
    creator, fan = make_creator(name="Nova <b>Star</b>"), make_fan()
    follows.follow(fan, creator.id)
    stream = make_stream(creator, title="Late night set")
    creator_name, stream_id = creator.display_name, stream.id
    p = open_page(fan, "/", viewport)
    page = p.page
    badge = page.locator("#bell-badge")
    wait_listening(p, hub, '[ws-connect="/ws/me"]')
    expect(badge).to_be_hidden()
    expect(page.get_by_role("link", name="Notifications", exact=True)).to_be_visible()

    streams.change_status(creator, stream_id, "start")  # the creator goes live; the job is queued
    run_worker(services)

    expect(badge).to_be_visible()  # pushed over /ws/me: no reload
    expect(badge).to_contain_text("1")
    expect(badge.locator(".sr-only")).to_have_text("1 unread notification")
    bell = page.get_by_role("link", name=re.compile(r"^Notifications\s+1 unread notification$"))
    expect(bell).to_be_visible()
    assert_fits(p)
    page.screenshot(path=f"/tmp/bell-{viewport}.png")

    bell.click()
    expect(page).to_have_url(re.compile(r"/notifications$"))
    item = page.locator(".notification.unread")
    expect(item).to_have_count(1)
    link = item.get_by_role("link")
    expect(link).to_have_text(f"Unread: {creator_name} is live: Late night set")  # the name shown as typed
    assert_fits(p)
    page.screenshot(path=f"/tmp/notifications-{viewport}.png", full_page=True)

    mark = page.get_by_role("button", name="Mark all as read")
    mark.click()
    done = page.get_by_role("status").filter(has_text="all caught up")
    expect(done).to_be_visible()
    expect(done).to_be_focused()  # the button it replaced had the focus: a keyboard user keeps their place
    expect(page.locator(".notification.unread")).to_have_count(0)
    expect(badge).to_be_hidden()
    assert_fits(p)

    page.locator(".notification-link").first.click()
    expect(page).to_have_url(re.compile(rf"/streams/{stream_id}$"))
    expect(badge).to_be_hidden()
    p.assert_clean()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_empty_notifications_page_points_to_discover(open_page, make_creator, viewport):
    p = open_page(make_creator(), "/notifications", viewport)
    expect(p.page.get_by_role("heading", name="No notifications yet")).to_be_visible()
    link = p.page.get_by_role("link", name="Discover creators")
    expect(link).to_be_visible()
    assert_fits(p)
    link.click()
    expect(p.page).to_have_url(re.compile(r"/$"))
    p.assert_clean()
