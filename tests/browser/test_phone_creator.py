"""A creator's OBS values and the new-stream form, on a phone (issue 17, "Creators").

At 390×844 (and 1280×900): the stream key and the overlay URL are masked until "Show"
is pressed, every value OBS needs has a Copy button that puts it on the clipboard and
says "Copied" (or, with no clipboard, selects the whole value for the person to copy),
and an empty "New stream" form asks for a title instead of creating a public stream.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from app.extensions import db
from app.streams import media
from tests.browser.pages import DESKTOP, logged_in_pages, assert_fits_and_accessible
from tests.browser.test_tips_live import WS_PROBE, log_in

PHONE = {"width": 390, "height": 844}
TIMEOUT = 5_000
INGEST = "rtmp://media.test:1935"
NO_CLIPBOARD = "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined});"


@pytest.fixture()
def open_page(browser, live_server):
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE, log_in)


@pytest.fixture()
def open_page_without_clipboard(browser, live_server):
    yield from logged_in_pages(browser, live_server, TIMEOUT, WS_PROBE + NO_CLIPBOARD, log_in)


@pytest.fixture()
def ingest(app, monkeypatch):
    """A media server is configured: the streams page lists OBS settings."""
    monkeypatch.setitem(app.config, "MEDIA_INGEST_URL", INGEST)


def allow_clipboard(p, base_url: str) -> None:
    p.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)


def clipboard(p) -> str:
    return p.page.evaluate("navigator.clipboard.readText()")


def is_masked(field) -> bool:
    return field.evaluate("el => el.type") == "password"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_obs_settings_mask_the_stream_key_until_shown_and_copy_each_value(open_page, live_server, ingest,
                                                                           new_creator, make_stream, viewport):
    creator = new_creator()
    stream = make_stream(creator, title="Friday night")
    key = f"{stream.id}?token={media.stream_key(creator)}"
    p = open_page(creator, "/creator/streams", viewport=viewport)
    allow_clipboard(p, live_server)
    p.page.get_by_text("OBS settings").click()
    server_field, key_field = p.page.get_by_label("Server", exact=True), p.page.get_by_label("Stream Key", exact=True)
    expect(server_field).to_have_value(f"{INGEST}/stream")
    assert is_masked(key_field), "the stream key is readable before Show is pressed"
    show = p.page.get_by_role("button", name="Show")
    expect(show).to_have_attribute("aria-pressed", "false")

    # Copy works on the masked key: the clipboard gets it, a live region says so.
    copy_buttons = p.page.get_by_role("button", name="Copy")
    expect(copy_buttons).to_have_count(2)
    copy_buttons.nth(1).click()
    expect(p.page.locator(f"#obs-key-{stream.id}-status")).to_have_text("Copied")
    assert clipboard(p) == key
    copy_buttons.nth(0).click()
    expect(p.page.locator(f"#obs-server-{stream.id}-status")).to_have_text("Copied")
    assert clipboard(p) == f"{INGEST}/stream"

    # Show, from the keyboard, reveals it; pressing again masks it again.
    show.focus()
    p.page.keyboard.press("Enter")
    expect(show).to_have_attribute("aria-pressed", "true")
    assert not is_masked(key_field)
    expect(key_field).to_have_value(key)
    p.page.keyboard.press("Space")
    expect(show).to_have_attribute("aria-pressed", "false")
    assert is_masked(key_field)
    for button in (show, *copy_buttons.all()):
        expect(button).to_be_in_viewport()
    p.page.screenshot(path=f"/tmp/{'phone' if viewport == PHONE else 'desktop'}-creator-streams-obs.png",
                      full_page=True)
    assert_fits_and_accessible(p)
    p.assert_clean()


def test_without_a_clipboard_copy_selects_the_whole_value(open_page_without_clipboard, ingest, new_creator,
                                                         make_stream):
    creator = new_creator()
    stream = make_stream(creator, title="Friday night")
    p = open_page_without_clipboard(creator, "/creator/streams", viewport=PHONE)
    p.page.get_by_text("OBS settings").click()
    p.page.get_by_role("button", name="Copy").nth(1).click()
    key_field = p.page.get_by_label("Stream Key", exact=True)
    expect(key_field).to_be_focused()
    assert not is_masked(key_field)  # a masked value can't be copied by hand
    selected = key_field.evaluate("el => [el.selectionStart, el.selectionEnd, el.value.length]")
    assert selected[0] == 0 and selected[1] == selected[2] > 0, selected
    expect(p.page.locator(f"#obs-key-{stream.id}-status")).to_contain_text("Selected")
    expect(p.page.get_by_role("button", name="Show")).to_have_attribute("aria-pressed", "true")
    p.assert_clean()


def test_settings_mask_the_stream_key_and_overlay_url_and_copy_them(open_page, live_server, new_creator):
    creator = new_creator()
    p = open_page(creator, "/creator/settings", viewport=PHONE)
    allow_clipboard(p, live_server)
    for label, status in (("Secret stream key", "#stream-key-status"), ("Overlay URL", "#overlay-url-status")):
        field = p.page.get_by_label(label, exact=True)
        assert is_masked(field), f"{label} is readable before Show is pressed"
        row = p.page.locator(".copy-field", has=field)
        row.get_by_role("button", name="Copy").click()
        expect(p.page.locator(status)).to_have_text("Copied")
        assert clipboard(p) == field.input_value()
        row.get_by_role("button", name="Show").click()
        assert not is_masked(field)
    assert clipboard(p) == p.page.get_by_label("Overlay URL", exact=True).input_value()
    assert urlsplit(clipboard(p)).path.startswith("/overlay/")
    assert_fits_and_accessible(p)
    p.assert_clean()


def streams_of(creator_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(text("SELECT count(*) FROM streams WHERE creator_id = :c"), {"c": creator_id})


def test_an_empty_new_stream_form_asks_for_a_title_and_creates_nothing(open_page, new_creator):
    creator = new_creator()
    p = open_page(creator, "/creator/streams", viewport=PHONE)
    with p.page.expect_response(lambda r: urlsplit(r.url).path == "/creator/streams") as answer:
        p.page.get_by_role("button", name=re.compile(r"^Create stream")).click()
    assert answer.value.status == 422
    title = p.page.get_by_label("Title", exact=True)
    expect(p.page.locator("#stream-title-error")).to_have_text("Title is required.")
    expect(p.page.locator("#stream-title-error")).to_be_in_viewport()
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(title).to_be_focused()
    assert streams_of(creator.id) == 0
    expect(p.page.get_by_text("No streams yet")).to_be_visible()

    # With a title it is created.
    title.fill("Sunday chat")
    p.page.get_by_role("button", name=re.compile(r"^Create stream")).click()
    expect(p.page.get_by_role("link", name="Sunday chat")).to_be_visible()
    assert streams_of(creator.id) == 1
    assert_fits_and_accessible(p)
    p.assert_clean(allowed=(r"status of 422",))
