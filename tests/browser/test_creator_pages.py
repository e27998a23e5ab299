"""Creator pages in a real browser (DESIGN.md §13), at phone (390×844) and desktop
(1280×900) size: a creator uploads an avatar on /creator/settings, a fan finds them by
searching Discover, opens /c/<handle>, sees that avatar and follows (the button flips,
the count moves) and unfollows by keyboard. Every page: axe without serious or
critical violations, no sideways scroll, no console or CSP error."""
from __future__ import annotations

import io
import re
import uuid

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.pages import assert_fits_and_accessible, fresh_pages, wait_htmx_ready
from tests.browser.test_tips_live import log_in

TIMEOUT = 5_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture()
def open_fresh(browser, live_server):
    yield from fresh_pages(browser, live_server, TIMEOUT)


def png(color=(30, 160, 220)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 400), color).save(out, "PNG")
    return out.getvalue()


def loaded_width(locator) -> int:
    """The image's decoded width (0 while not loaded or broken)."""
    locator.evaluate("img => img.decode ? img.decode().catch(() => {}) : null")
    return locator.evaluate("img => img.complete ? img.naturalWidth : 0")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_fan_finds_a_creator_by_search_opens_their_page_sees_the_avatar_and_follows(
        open_fresh, make_creator, make_fan, make_stream, viewport):
    tag = uuid.uuid4().hex[:6]
    creator = make_creator(name=f"Orla {tag}")
    fan = make_fan()
    make_stream(creator=creator, title=f"Orla live {tag}", live=True)

    # The creator uploads a picture: a preview first, then the stored one.
    cp = open_fresh(viewport)
    log_in(cp, creator, "/creator/settings")
    page = cp.page
    page.get_by_label("Profile picture").set_input_files(
        {"name": "me.png", "mimeType": "image/png", "buffer": png()})
    expect(page.locator("[data-avatar-preview] img")).to_have_attribute("src", re.compile(r"^data:image/png"))
    page.get_by_role("button", name="Upload picture").click()
    expect(page.get_by_test_id("avatar-saved")).to_be_visible()
    stored = page.locator("[data-avatar-preview] img")
    expect(stored).to_have_attribute("src", f"/avatars/{creator.id}.webp?v=1")
    assert loaded_width(stored) == 256
    assert_fits_and_accessible(cp)
    cp.assert_clean()

    # The fan searches Discover as they type and opens the creator's page.
    fp = open_fresh(viewport)
    log_in(fp, fan, "/")
    page = fp.page
    card = page.get_by_test_id("live-now").locator("li", has_text=f"Orla live {tag}")
    assert loaded_width(card.locator("img.avatar")) == 256
    search = page.get_by_label("Creator name or handle")
    search.press_sequentially(f"orla {tag}".upper()[:8], delay=20)
    results = page.get_by_test_id("search-results")
    expect(results.get_by_role("link", name=f"Orla {tag}")).to_be_visible()
    assert_fits_and_accessible(fp)
    results.get_by_role("link", name=f"Orla {tag}").click()
    expect(page).to_have_url(re.compile(rf"/c/{creator.handle}$"))
    wait_htmx_ready(page)
    expect(page.get_by_role("heading", level=1, name=f"Orla {tag}")).to_be_visible()
    avatar = page.locator(".creator-header img.avatar")
    expect(avatar).to_have_attribute("src", f"/avatars/{creator.id}.webp?v=1")
    assert loaded_width(avatar) == 256
    assert_fits_and_accessible(fp)

    # Follow: the button flips and the count moves; then unfollow by keyboard.
    count = page.get_by_test_id("follower-count")
    expect(count).to_have_text("0 followers")
    page.get_by_test_id("follow-button").click()
    expect(page.get_by_test_id("follow-button")).to_contain_text("Following")
    expect(count).to_have_text("1 follower")
    assert_fits_and_accessible(fp)
    page.get_by_test_id("follow-button").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("follow-button")).to_have_text(re.compile(r"^\s*Follow\b(?!ing)"))
    expect(count).to_have_text("0 followers")
    fp.assert_clean()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_refused_avatar_shows_its_error_next_to_the_field_and_a_visitor_is_asked_to_log_in(
        open_fresh, make_creator, viewport):
    creator = make_creator()
    cp = open_fresh(viewport)
    log_in(cp, creator, "/creator/settings")
    page = cp.page
    page.get_by_label("Profile picture").set_input_files(
        {"name": "fake.png", "mimeType": "image/png", "buffer": b"this is text, not a picture"})
    page.get_by_role("button", name="Upload picture").click()
    error = page.locator("#profile-avatar-error")
    expect(error).to_have_text("Upload a PNG, JPEG or WebP image.")
    expect(page.get_by_label("Profile picture")).to_have_attribute("aria-invalid", "true")
    assert_fits_and_accessible(cp)
    cp.assert_clean(allowed=(r"status of 422",))

    visitor = open_fresh(viewport)
    visitor.page.goto(f"/c/{creator.handle}")
    link = visitor.page.get_by_role("link", name="Log in to follow")
    expect(link).to_be_visible()
    assert "next=" in link.get_attribute("href")
    assert_fits_and_accessible(visitor)
    visitor.assert_clean()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_fan_follows_from_the_stream_page_header_and_its_name_links_to_the_creator_page(
        open_fresh, make_creator, make_fan, make_stream, viewport):
    creator, fan = make_creator(), make_fan()
    stream = make_stream(creator=creator, title="Header show", live=True)
    p = open_fresh(viewport)
    log_in(p, fan, f"/streams/{stream.id}")
    page = p.page
    page.get_by_test_id("follow-button").click()
    expect(page.get_by_test_id("follow-button")).to_contain_text("Following")
    expect(page.get_by_test_id("follower-count")).to_have_text("1 follower")
    assert_fits_and_accessible(p)
    page.locator("#show").get_by_role("link", name=creator.display_name, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/c/{creator.handle}$"))
    expect(page.get_by_test_id("follow-button")).to_contain_text("Following")
    p.assert_clean()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_discover_shows_live_cards_with_avatar_and_viewer_count_and_starting_soon_apart(
        open_fresh, make_creator, make_fan, make_stream, viewport):
    """A live stream is under "Live now" with its creator's avatar and how many watch it; a
    scheduled show is under "Starting soon" with its start time, never under "Live now"."""
    tag = uuid.uuid4().hex[:6]
    creator = make_creator(name=f"Vera {tag}")
    make_stream(creator=creator, title=f"Vera on air {tag}", live=True)
    soon = make_stream(creator=creator, title=f"Vera later {tag}", type_="private", ticket_price=300,
                       starts_at="2030-01-02T18:30:00Z")
    # A viewer on the live stream's page (joined to its channel).
    viewer = open_fresh(viewport)
    log_in(viewer, make_fan(), "/")
    viewer.page.get_by_test_id("live-now").get_by_role("link", name=f"Vera on air {tag}").click()
    expect(viewer.page.locator("#viewer-count")).to_have_text(re.compile(r"^1 watching"))

    p = open_fresh(viewport)
    p.page.goto("/")
    live_now, starting = p.page.get_by_test_id("live-now"), p.page.get_by_test_id("starting-soon")
    card = live_now.locator("li", has_text=f"Vera on air {tag}")
    expect(card.get_by_test_id("card-viewers")).to_have_text("1 watching")
    expect(card.locator(".avatar")).to_be_visible()
    expect(live_now.locator("li", has_text=f"Vera later {tag}")).to_have_count(0)
    later = starting.locator("li", has_text=f"Vera later {tag}")
    expect(later.locator("time")).to_have_attribute("datetime", soon.starts_at.isoformat())
    expect(later).to_contain_text("Jan 2, 18:30 UTC")
    assert_fits_and_accessible(p)
    p.assert_clean()
    viewer.assert_clean()
