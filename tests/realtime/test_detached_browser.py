"""A viewer's page against the production server (gunicorn's gevent worker),
where the hub serves each socket itself once its state is sent (detached.py).

In Debian's Chromium at phone size: the page's socket syncs, a tip pops up live;
Redis crashes (SIGKILL) and a tip commits meanwhile; when Redis is back the hub
closes the page's socket with 1012, the page's ws extension reconnects and the
new socket's state lists the tip it missed; tips flow live again afterwards.
"""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.pages import Page
from tests.deploy.helpers import start_production_server
from tests.realtime.helpers import Api

TIMEOUT = 10_000  # ms
BACK = 25_000  # ms: the hub's reconnect backoff is at most 5 s, htmx's reconnect delay a few more
# Counts each socket opening and each message of the page's htmx ws elements (test-only, run
# through the DevTools protocol before any page script: no <script> in the page, CSP unaffected).
WS_PROBE = """
document.addEventListener("htmx:wsOpen", (e) => {
  const opened = parseInt(e.target.getAttribute("data-test-ws-opens") || "0", 10);
  e.target.setAttribute("data-test-ws-opens", String(opened + 1));
});
document.addEventListener("htmx:wsAfterMessage", (e) => {
  const seen = parseInt(e.target.getAttribute("data-test-ws-messages") || "0", 10);
  e.target.setAttribute("data-test-ws-messages", String(seen + 1));
});
"""


def test_a_phone_viewer_of_the_production_server_gets_tips_live_and_resyncs_by_reconnecting(
        app, browser, services, own_redis, tmp_path):  # app: the session database, migrated
    server = start_production_server("gevent-viewer", (services[0], own_redis.url), tmp_path)
    context = None
    try:
        api = Api(server.base)
        creator, creator_h = api.register("creator")
        _fan, fan_h = api.register("fan")
        api.buy(fan_h, 1000)
        stream = api.live_stream(creator_h)

        context = browser.new_context(base_url=server.base, viewport={"width": 390, "height": 844})
        context.set_default_timeout(TIMEOUT)
        context.add_init_script(WS_PROBE)
        p = Page(context.new_page())
        p.page.goto(f"/streams/{stream['id']}")
        socket_el = p.page.locator(f"[ws-connect='/ws/channels/{stream['channel']}']")
        expect(socket_el).to_have_attribute("data-test-ws-messages", re.compile(r"^[1-9]\d*$"))
        expect(socket_el).to_have_attribute("data-test-ws-opens", "1")

        live = api.send_tip(fan_h, creator["id"], 10, "live on gevent", stream["id"])
        expect(p.page.locator(f"#recent-tips #recent-tip-{live['tip']['id']}")).to_contain_text("live on gevent")

        own_redis.kill()
        status, missed = api.tip(fan_h, creator["id"], 20, "while Redis was down", stream["id"])
        assert status == 201, missed  # the money moves; the pop is lost
        own_redis.start()

        # The hub is back and offers RESYNC: the socket it serves is closed with 1012, the
        # page reconnects (a second open), and the new socket's state has the missed tip.
        expect(socket_el).to_have_attribute("data-test-ws-opens", "2", timeout=BACK)
        expect(p.page.locator(f"#recent-tips #recent-tip-{missed['tip']['id']}")).to_contain_text(
            "while Redis was down", timeout=BACK)

        after = api.send_tip(fan_h, creator["id"], 30, "live again", stream["id"])
        expect(p.page.locator(f"#recent-tips #recent-tip-{after['tip']['id']}")).to_contain_text("live again")
        expect(socket_el).to_have_attribute("data-test-ws-opens", "2")  # no other reconnect
        p.assert_clean()
    finally:
        if context is not None:
            context.close()
        server.stop()
