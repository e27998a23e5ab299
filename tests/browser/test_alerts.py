"""Alert controls in a real browser (DESIGN.md §12): the OBS source plays alerts one at a
time, in order, with the creator's sound; the creator approves a waiting message from
their dashboard's feed and OBS shows it; the Alerts settings on a phone and a desktop;
hostile and rude messages stay (masked) text. Chromium runs with autoplay allowed, as in
OBS, so the sound really plays."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.alerts import service as alerts
from app.tips import service as tips
from tests.browser.pages import DESKTOP, Page, assert_fits_and_accessible, fresh_pages, logged_in_pages
from tests.browser.test_tips_live import WS_PROBE, log_in, wait_listening
from tests.conftest import launch_chromium

TIMEOUT = 5_000
PHONE = {"width": 390, "height": 844}
HOSTILE = "<img src=x onerror=alert(1)> fuck this"
MASKED = "<img src=x onerror=alert(1)> *** this"

# Before any page script (DevTools protocol, so CSP is untouched): watch the OBS stage and
# note every alert shown, the most ever visible at once, and every sound that started.
OBS_PROBE = WS_PROBE + """
window.obsSeen = []; window.obsShownAt = []; window.obsMaxVisible = 0; window.obsSounds = [];
document.addEventListener("play", (e) => window.obsSounds.push(e.target.id), true);
document.addEventListener("DOMContentLoaded", () => {
  const stage = document.getElementById("tip-overlay");
  if (!stage) return;
  new MutationObserver(() => {
    const shown = stage.querySelectorAll(".tip-pop");
    window.obsMaxVisible = Math.max(window.obsMaxVisible, shown.length);
    shown.forEach((el) => {
      if (!window.obsSeen.includes(el.id)) { window.obsSeen.push(el.id); window.obsShownAt.push(performance.now()); }
    });
  }).observe(stage, { childList: true });
});
"""


@pytest.fixture(scope="module")
def autoplay_browser(pw_driver):
    yield from launch_chromium(pw_driver, ["--autoplay-policy=no-user-gesture-required"])


@pytest.fixture()
def open_page(autoplay_browser, live_server):
    """open_page(user, path, viewport=DESKTOP) → a Page, logged in through /login, on `path`."""
    yield from logged_in_pages(autoplay_browser, live_server, TIMEOUT, OBS_PROBE, log_in)


@pytest.fixture()
def open_anonymous(autoplay_browser, live_server):
    yield from fresh_pages(autoplay_browser, live_server, TIMEOUT, OBS_PROBE)


def send_tip(sender, creator, amount, message="", stream_id=None):
    context = {"streamId": stream_id} if stream_id else None
    return tips.send_tip(sender, creator.id, amount, message, context, str(uuid.uuid4())).tip


def open_obs(open_anonymous, hub, creator) -> Page:
    obs = open_anonymous()
    obs.page.goto(urlsplit(f"/overlay/{tips.overlay_secret(creator)}").path)
    wait_listening(obs, hub, "body")  # its (re)connect state: the creator's sound
    return obs


def obs_scene(open_anonymous, hub, make_fan, new_creator, make_stream, balance: int):
    """A creator live (every tip alerts, with the "coin" sound), a fan with `balance`, and the
    creator's OBS source listening: (creator, fan, stream id, OBS page)."""
    creator, fan = new_creator(), make_fan(balance=balance)
    alerts.update_settings(creator, 0, False, False, "coin")
    stream_id = make_stream(creator, live=True).id
    return creator, fan, stream_id, open_obs(open_anonymous, hub, creator)


def test_obs_plays_three_quick_tips_one_at_a_time_in_order_with_the_sound(
        open_anonymous, hub, make_fan, new_creator, make_stream):
    creator, fan, stream_id, obs = obs_scene(open_anonymous, hub, make_fan, new_creator, make_stream, 1_000)
    expect(obs.page.locator("#alert-sound")).to_have_attribute("data-sound", "coin")
    sent = [send_tip(fan, creator, amount, f"number {i}", stream_id) for i, amount in enumerate((50, 60, 70))]
    ids = [f"tip-{t.id}" for t in sent]

    stage = obs.page.locator("#tip-overlay")
    first = stage.locator(f"#{ids[0]}")
    expect(first).to_be_visible()
    expect(first).to_have_attribute("data-sound", "coin")
    expect(stage.locator(".tip-pop")).to_have_count(1)  # the other two wait, hidden
    expect(obs.page.locator("#alert-queue .tip-pop")).to_have_count(2)
    # Each shows for its data-ttl (4 s here), then the next: all three within ~14 s.
    obs.page.wait_for_function("(n) => window.obsSeen.length >= n", arg=3, timeout=16_000)
    assert obs.page.evaluate("window.obsSeen") == ids
    assert obs.page.evaluate("window.obsMaxVisible") == 1  # never two at once
    assert obs.page.evaluate("window.obsSounds")[:3] == ["sound-coin"] * 3
    obs.assert_clean()


def test_obs_in_a_tip_storm_keeps_fifty_waiting_drops_the_smallest_first_and_plays_them_faster(
        open_anonymous, hub, make_fan, new_creator, make_stream):
    creator, fan, stream_id, obs = obs_scene(open_anonymous, hub, make_fan, new_creator, make_stream, 10_000)
    # 55 small tips (tier 1), then 5 big ones (tier 3). The first plays at once; of the 59 that
    # wait, the nine oldest small ones are dropped to keep 50 waiting, the big ones all stay.
    small = [send_tip(fan, creator, 10, f"small {i}", stream_id) for i in range(55)]
    big = [send_tip(fan, creator, 1_000, f"big {i}", stream_id) for i in range(5)]
    queue = obs.page.locator("#alert-queue")
    expect(queue.locator(f"#tip-{big[-1].id}")).to_have_count(1)
    waiting = obs.page.evaluate("Array.from(document.querySelectorAll('#alert-queue > li'), (li) => li.id)")
    playing = obs.page.evaluate("window.obsSeen")
    assert playing[0] == f"tip-{small[0].id}"
    assert len(waiting) == 50, waiting
    assert waiting[-5:] == [f"tip-{t.id}" for t in big]
    assert waiting[0] in [f"tip-{t.id}" for t in small[10:12]], waiting[:3]  # the oldest small ones went
    assert not set(waiting) & {f"tip-{t.id}" for t in small[1:10]}
    # While more than three wait, each alert shows for 1.5 s instead of its 4 s (then 0.4 s fade).
    obs.page.wait_for_function("(n) => window.obsSeen.length >= n", arg=4, timeout=16_000)
    started = obs.page.evaluate("window.obsShownAt")
    gaps = [(b - a) / 1000 for a, b in zip(started[1:], started[2:4])]
    assert all(1.8 <= gap < 3.5 for gap in gaps), gaps  # 4.4 s each without the storm rule
    assert obs.page.evaluate("window.obsMaxVisible") == 1
    obs.assert_clean()


def test_creator_approves_a_waiting_message_from_the_dashboard_and_obs_shows_it_masked(
        open_page, open_anonymous, hub, make_fan, new_creator, make_stream):
    creator, fan = new_creator(), make_fan(balance=1_000)
    alerts.update_settings(creator, 0, True, True, None)
    stream_id = make_stream(creator, live=True).id
    obs = open_obs(open_anonymous, hub, creator)
    c = open_page(creator, "/dashboard")
    wait_listening(c, hub, "[ws-connect='/ws/me']")
    viewer = open_page(make_fan(), f"/streams/{stream_id}")
    wait_listening(viewer, hub, ".player")

    tip = send_tip(fan, creator, 100, HOSTILE, stream_id)
    # OBS: the alert plays at once, without the message.
    alert = obs.page.locator(f"#tip-overlay #tip-{tip.id}")
    expect(alert).to_be_visible()
    expect(alert.locator(".tip-message")).to_have_count(0)
    # The viewers' page is not held back, but masked; the hostile text stays text.
    expect(viewer.page.locator(f"#recent-tip-{tip.id} .tip-message")).to_have_text(MASKED)
    # The creator's feed: the message as typed, and the decision to make.
    item = c.page.locator(f"#dashboard-tips #dash-tip-{tip.id}")
    expect(item.locator(".tip-message")).to_have_text(HOSTILE)
    expect(item).to_contain_text("waits for your OK")
    item.get_by_role("button", name="Show on stream").click()
    expect(item.locator(".tip-approval")).to_have_text("Shown on stream.")
    expect(item.get_by_role("button")).to_have_count(0)

    approved = obs.page.locator(f"#tip-overlay #approved-tip-{tip.id}")
    expect(approved).to_be_visible(timeout=10_000)  # after the first alert's 4 s
    expect(approved.locator(".tip-message")).to_have_text(MASKED)
    assert alerts.settings_of(creator.id).require_approval
    for p in (obs, c, viewer):
        expect(p.page.locator("main img[src=x], body img[src=x]")).to_have_count(0)
        p.assert_clean()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_alert_settings_fit_are_accessible_and_show_errors_next_to_the_field(open_page, new_creator, viewport):
    creator = new_creator()
    p = open_page(creator, "/creator/settings", viewport)
    section = p.page.locator("#alert-settings")
    section.scroll_into_view_if_needed()
    expect(section.get_by_role("heading", name="Alerts")).to_be_visible()
    assert_fits_and_accessible(p)

    section.get_by_label("Minimum tip for an alert (tokens)").fill("-5")
    section.get_by_role("button", name="Save alert settings").click()
    field = section.get_by_label("Minimum tip for an alert (tokens)")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(p.page.locator("#alert-min-error")).to_be_visible()
    expect(field).to_have_attribute("aria-describedby", "alert-min-error")
    assert_fits_and_accessible(p)

    section = p.page.locator("#alert-settings")
    section.get_by_label("Minimum tip for an alert (tokens)").fill("250")
    section.get_by_label("Mask profanity in messages").check()
    section.get_by_label("Sound on OBS").select_option("bell")
    section.get_by_role("button", name="Play the chosen sound").click()
    expect(section.locator("[data-play-sound]")).to_have_attribute("data-playing", "bell")
    section.get_by_role("button", name="Save alert settings").click()
    expect(p.page.get_by_test_id("alert-settings-saved")).to_be_visible()
    assert alerts.settings_of(creator.id) == alerts.AlertSettings(250, True, False, "bell")
    assert_fits_and_accessible(p)
    p.assert_clean(allowed=(r"status of 422 \(UNPROCESSABLE ENTITY\)",))  # the refused form, on purpose
