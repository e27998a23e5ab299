"""Push notifications in Chromium: the service worker registers at /sw.js with scope /,
"Notifications on this device" on /creator/settings and /account at 390×844 and
1280×900 (axe-clean, no sideways scroll, keyboard-usable), and a push the job sends
reaches what the page subscribed.

Headless Chromium has no push service: `pushManager.subscribe` fails there
("Registration failed - permission denied"). So one test drives the page with the
real API and proves the failure is shown next to the choices and nothing is stored;
the others stand in for the browser's push service at `PushManager.subscribe` (an
init script, like the tests' WebSocket probe): it makes a real P-256 key pair and
auth secret with WebCrypto and hands out an endpoint on the local receiver
(tests/push/receiver.py). Everything after it is real: the page's POST, the stored
subscription, the job's encrypted, signed push, and its decryption here with the
page's private key. The service worker's own `push` and `notificationclick` code
gets a push through the DevTools protocol (`ServiceWorker.deliverPushMessage`).
"""
from __future__ import annotations

import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.push.models import PushSubscription
from app.tips import service as tips
from tests.browser.pages import Page, assert_fits_and_accessible
from tests.browser.test_tips_live import log_in
from tests.push.conftest import receiver  # noqa: F401  (the fixture)
from tests.push.helpers import Device
from tests.push.receiver import b64url_decode

TIMEOUT = 5_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Stands in for the browser's push service (see the module docstring). The subscription is kept in
# localStorage so a reload finds it, as a real browser would.
PUSH_SERVICE_STUB = """
(() => {
  const ENDPOINT = %s;
  const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  const unb64 = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  function revive(saved) {
    if (!saved) return null;
    return {
      endpoint: saved.endpoint,
      options: { userVisibleOnly: true, applicationServerKey: unb64(saved.serverKey).buffer },
      toJSON: () => ({ endpoint: saved.endpoint, expirationTime: null, keys: saved.keys }),
      unsubscribe: async () => { localStorage.removeItem("test-push"); return true; },
    };
  }
  PushManager.prototype.getSubscription = async function () {
    return revive(JSON.parse(localStorage.getItem("test-push") || "null"));
  };
  PushManager.prototype.subscribe = async function (options) {
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
    const saved = {
      endpoint: ENDPOINT,
      serverKey: b64(options.applicationServerKey),
      keys: { p256dh: b64(await crypto.subtle.exportKey("raw", pair.publicKey)),
              auth: b64(crypto.getRandomValues(new Uint8Array(16))) },
      privateJwk: await crypto.subtle.exportKey("jwk", pair.privateKey),
    };
    localStorage.setItem("test-push", JSON.stringify(saved));
    return revive(saved);
  };
})();
"""


@pytest.fixture()
def open_push_page(browser, live_server):
    """open_push_page(user, path, viewport, endpoint=None) → a logged-in Page whose context may
    show notifications; with `endpoint`, PushManager.subscribe hands out that endpoint."""
    contexts = []

    def _open(user, path, viewport, endpoint=None) -> Page:
        context = browser.new_context(base_url=live_server, viewport=viewport, permissions=["notifications"])
        context.set_default_timeout(TIMEOUT)
        if endpoint:
            context.add_init_script(PUSH_SERVICE_STUB % json.dumps(endpoint))
        contexts.append(context)
        p = Page(context.new_page())
        log_in(p, user, path)
        return p
    yield _open
    for context in contexts:
        context.close()


def worker_scope(p: Page) -> str:
    """The scope of the active service worker once navigator.serviceWorker.ready resolves."""
    return p.page.evaluate("navigator.serviceWorker.ready.then((r) => r.active && r.scope)")


def stored(endpoint: str) -> PushSubscription | None:
    db.session.rollback()
    return db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))


def page_device(p: Page) -> Device:
    """The subscription the page made, with its private key, to decrypt what it was sent."""
    saved = p.page.evaluate("JSON.parse(localStorage.getItem('test-push'))")
    device = Device(saved["endpoint"])
    device.private_key = ec.derive_private_key(int.from_bytes(b64url_decode(saved["privateJwk"]["d"]), "big"),
                                               ec.SECP256R1())
    device.auth_secret = b64url_decode(saved["keys"]["auth"])
    return device


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_creator_turns_on_tip_pushes_gets_one_and_turns_them_off(ctx, open_push_page, make_creator, make_fan,
                                                                   receiver, run_jobs, live_server, viewport):
    creator, fan = make_creator(), make_fan(balance=500, name="Fan Xavier")
    name = f"creator-{uuid.uuid4().hex[:8]}"
    p = open_push_page(creator, "/creator/settings", viewport, endpoint=receiver.endpoint(name))
    page = p.page
    section = page.get_by_test_id("push-device")
    assert worker_scope(p) == live_server + "/"
    status = section.locator("[data-push-status]")
    expect(status).to_have_text("Off on this device.")
    turn_on = section.get_by_role("button", name="Turn on notifications")
    expect(turn_on).to_be_visible()
    expect(section.get_by_role("button", name="Turn off on this device")).to_be_hidden()
    assert_fits_and_accessible(p)

    section.get_by_label("Each call request").uncheck()
    turn_on.focus()
    page.keyboard.press("Enter")
    expect(status).to_have_text("On for this device: Each tip.")
    assert stored(receiver.endpoint(name)).topics == ["tips"]
    assert_fits_and_accessible(p)

    tips.send_tip(fan, creator.id, 50, "", None, str(uuid.uuid4()))
    run_jobs()
    (received,) = receiver.to(name)
    assert page_device(p).decrypt(received.body) == {"title": "New tip: 50 tokens", "body": "Fan Xavier tipped you 50 tokens",
                                                     "url": "/dashboard", "tag": "tips"}

    page.reload()
    expect(status).to_have_text("On for this device: Each tip.")
    expect(section.get_by_label("Each tip")).to_be_checked()
    expect(section.get_by_label("Each call request")).not_to_be_checked()
    expect(section.get_by_role("button", name="Save choices")).to_be_visible()
    section.get_by_role("button", name="Turn off on this device").click()
    expect(status).to_have_text("Off on this device.")
    assert stored(receiver.endpoint(name)) is None
    p.assert_clean()


def test_turning_off_went_live_on_the_account_page_keeps_the_devices_tip_pushes(ctx, open_push_page, make_creator,
                                                                                 receiver):
    """Each page changes only its own topics of the device's one subscription."""
    creator = make_creator()
    name = f"shared-{uuid.uuid4().hex[:8]}"
    p = open_push_page(creator, "/creator/settings", PHONE, endpoint=receiver.endpoint(name))
    section = p.page.get_by_test_id("push-device")
    section.get_by_role("button", name="Turn on notifications").click()
    expect(section.locator("[data-push-status]")).to_have_text("On for this device: Each tip, Each call request.")
    p.page.goto("/account")
    account = p.page.get_by_test_id("push-device")
    expect(account.locator("[data-push-status]")).to_have_text("Off on this device.")
    account.get_by_role("button", name="Turn on notifications").click()
    expect(account.locator("[data-push-status]")).to_have_text("On for this device: A creator I follow goes live.")
    assert stored(receiver.endpoint(name)).topics == ["tips", "calls", "live"]
    assert_fits_and_accessible(p)
    account.get_by_role("button", name="Turn off on this device").click()
    expect(account.locator("[data-push-status]")).to_have_text("Off on this device.")
    assert stored(receiver.endpoint(name)).topics == ["tips", "calls"]
    p.assert_clean()


def test_choosing_nothing_shows_the_error_next_to_the_choices(ctx, open_push_page, make_fan, receiver):
    p = open_push_page(make_fan(), "/account", PHONE, endpoint=receiver.endpoint("nothing"))
    section = p.page.get_by_test_id("push-device")
    section.get_by_label("A creator I follow goes live").uncheck()
    section.get_by_role("button", name="Turn on notifications").click()
    error = section.get_by_role("alert")
    expect(error).to_have_text("Choose at least one kind of notification, or turn them off.")
    assert stored(receiver.endpoint("nothing")) is None
    assert_fits_and_accessible(p)
    p.assert_clean()


def test_without_a_push_service_headless_chromium_shows_why_and_nothing_is_stored(ctx, open_push_page, make_fan):
    fan = make_fan()
    p = open_push_page(fan, "/account", DESKTOP)
    section = p.page.get_by_test_id("push-device")
    assert worker_scope(p).endswith("/")
    section.get_by_role("button", name="Turn on notifications").click()
    expect(section.get_by_role("alert")).to_contain_text("This browser could not set up notifications")
    expect(section.locator("[data-push-status]")).to_have_text("Off on this device.")
    expect(section.get_by_role("button", name="Turn on notifications")).to_be_enabled()
    db.session.rollback()
    assert db.session.scalars(select(PushSubscription).where(PushSubscription.user_id == fan.id)).all() == []
    p.assert_clean(allowed=(r"does not support the Push API in incognito mode",))


def test_the_service_worker_shows_a_push_as_a_notification_that_opens_a_page_of_this_site(
        ctx, open_push_page, make_fan, live_server):
    p = open_push_page(make_fan(), "/account", DESKTOP)
    assert worker_scope(p) == live_server + "/"
    cdp = p.page.context.new_cdp_session(p.page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    for _ in range(100):  # the protocol reports registrations as events: up to 5 s
        ours = [r for r in registrations if r["scopeURL"] == live_server + "/" and not r["isDeleted"]]
        if ours:
            break
        p.page.wait_for_timeout(50)
    registration = ours[0]
    for url, opened in (("/streams/7", f"{live_server}/streams/7"), ("https://evil.example/x", f"{live_server}/")):
        cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": live_server, "registrationId": registration["registrationId"],
            "data": json.dumps({"title": "Ana is live", "body": "Come and watch", "url": url, "tag": "live-7"})})
        shown = p.page.evaluate("""async (opened) => {
            const registration = await navigator.serviceWorker.ready;
            for (let i = 0; i < 100; i++) {  // the worker shows it asynchronously: up to 5 s
                const list = await registration.getNotifications({tag: "live-7"});
                const n = list.find((n) => n.data.url === opened);
                if (n) return {title: n.title, body: n.body, url: n.data.url};
                await new Promise((resolve) => setTimeout(resolve, 50));
            }
            return null;
        }""", opened)
        assert shown == {"title": "Ana is live", "body": "Come and watch", "url": opened}
    p.assert_clean()
