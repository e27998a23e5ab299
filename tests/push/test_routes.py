"""The service worker at /sw.js and the "Notifications on this device" sections of
/creator/settings and /account (app/push/routes.py, templates/push/_device.html)."""
from __future__ import annotations

import re

from tests.conftest import fresh_client
from tests.helpers import log_in, visible


def test_the_service_worker_is_served_from_the_root_with_its_scope_allowed(client):
    resp = client.get("/sw.js")
    assert resp.status_code == 200
    assert resp.mimetype == "application/javascript"
    assert resp.headers["Service-Worker-Allowed"] == "/"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "worker-src 'self'" in resp.headers["Content-Security-Policy"]
    body = resp.get_data(as_text=True)
    assert 'addEventListener("push"' in body and 'addEventListener("notificationclick"' in body


def test_creator_settings_offer_tips_and_call_requests_on_this_device(app, client, make_creator):
    log_in(client, make_creator())
    html = client.get("/creator/settings").get_data(as_text=True)
    section = re.search(r'<section class="card push-device".*?</section>', html, re.DOTALL).group(0)
    assert f'data-push-key="{app.config["VAPID_PUBLIC_KEY"]}"' in section
    assert 'value="tips"' in section and 'value="calls"' in section and 'value="live"' not in section
    assert "Notifications on this device" in visible(section)
    assert "js/push.js" in section and "<script>" not in section and "style=" not in section


def test_the_account_page_offers_went_live_to_everyone(client, make_fan):
    log_in(client, make_fan())
    html = client.get("/account").get_data(as_text=True)
    section = re.search(r'<section class="card push-device".*?</section>', html, re.DOTALL).group(0)
    assert 'value="live"' in section and 'value="tips"' not in section
    assert "A creator I follow goes live" in visible(section)


def test_without_vapid_keys_the_pages_say_push_is_not_set_up_and_the_api_refuses(make_app, new_client, make_fan):
    off = make_app()
    # What production without VAPID keys runs with (tests/push/test_config.py proves the config says so).
    off.config.update(PUSH_ENABLED=False, VAPID_PRIVATE_KEY="", VAPID_PUBLIC_KEY="")
    client = fresh_client(off)
    token = log_in(client, make_fan())
    page = visible(client.get("/account").get_data(as_text=True))
    assert "Push notifications are not set up on this site." in page
    resp = client.post("/api/me/push/subscriptions", json={"endpoint": "https://a.example/x"},
                       headers={"X-CSRFToken": token})
    assert resp.status_code == 409 and resp.get_json()["code"] == "push_disabled"
    assert client.get("/api/me/push/subscriptions").get_json()["publicKey"] is None
