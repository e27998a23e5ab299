"""deploy/nginx.conf in front of the production server (DESIGN.md §14): Debian's
real nginx, TLS with a self-signed certificate, gunicorn (gevent) with
APP_ENV=production and TRUSTED_PROXIES=1, the session's PostgreSQL and Redis.

Clients speak from their own loopback addresses (127.x.y.z), so the proxy sees
each one as a different client, as it would on the internet."""
from __future__ import annotations

import random
import re
import ssl
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from tests.deploy.helpers import (
    SITE_TEMPLATE, Client, Nginx, client_tls, csrf_token, documented_variables, require_nginx,
    self_signed_certificate, start_nginx, start_production_server,
)
from tests.realtime.helpers import ServerProcess, Viewer, handshake

SIGNUPS_PER_HOUR = 3
_used_addresses = {"127.0.0.1"}  # the proxy's own


def client_address() -> str:
    """A loopback address no other client of this run has used (per-IP counters start at zero)."""
    while True:
        address = f"127.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        if address not in _used_addresses:
            _used_addresses.add(address)
            return address


@dataclass
class Proxied:
    nginx: Nginx
    server: ServerProcess
    tls: ssl.SSLContext

    @property
    def origin(self) -> str:
        return self.nginx.origin

    def client(self) -> Client:
        """A new person: their own address and cookie jar, over https through nginx."""
        return Client(self.origin, client_address(), self.tls)


@pytest.fixture(scope="module")
def proxied(app, services, tmp_path_factory):
    """nginx (deploy/nginx.conf) → gunicorn -c gunicorn.conf.py, on a non-standard https port."""
    require_nginx()
    workdir = tmp_path_factory.mktemp("proxied")
    cert, key = self_signed_certificate(workdir)
    server = start_production_server("app", services, workdir, TRUSTED_PROXIES="1",
                                     SIGNUP_LIMIT_PER_IP=f"{SIGNUPS_PER_HOUR} per hour")
    try:
        nginx = start_nginx(server.base.removeprefix("http://"), cert, key)
    except BaseException:
        server.stop()
        raise
    yield Proxied(nginx, server, client_tls(cert))
    nginx.stop()
    server.stop()


def register(client: Client, role: str = "fan", headers: dict | None = None):
    return client.post("/api/auth/register", {
        "email": f"proxy-{role}-{uuid.uuid4().hex[:12]}@example.com", "password": "correct-horse-1",
        "displayName": f"Proxy {role} {uuid.uuid4().hex[:4]}", "role": role}, headers=headers)


def assert_cookies_secure(resp):
    cookies = resp.all("Set-Cookie")
    assert cookies, resp.headers
    assert all("; secure" in c.lower() for c in cookies), cookies


def test_the_readme_fill_command_names_every_placeholder_of_the_site():
    """A placeholder missing from the README's envsubst list would reach nginx unfilled."""
    placeholders = set(re.findall(r"\$\{(\w+)\}", SITE_TEMPLATE.read_text()))
    assert placeholders and set(re.findall(r"\$\{(\w+)\}", documented_variables())) == placeholders


def test_plain_http_is_redirected_to_https_on_the_public_port(proxied):
    resp = Client(f"http://127.0.0.1:{proxied.nginx.http_port}", client_address()).get("/wallet?page=2")
    assert resp.status == 301
    assert resp.header("Location") == f"{proxied.origin}/wallet?page=2"


def test_a_page_over_https_has_secure_cookies_and_only_the_apps_own_headers(proxied):
    page = proxied.client().get("/signup")
    assert page.status == 200 and page.header("Content-Type").startswith("text/html")
    assert 'name="csrf_token"' in page.text
    assert_cookies_secure(page)
    assert page.all("X-Frame-Options") == ["DENY"]  # the app's, once: nginx adds none
    assert page.header("Strict-Transport-Security")


def test_a_tip_sent_through_the_proxy_reaches_the_obs_overlay_over_wss(proxied):
    """A creator signs up with the HTML form (CSRF referrer check on https, non-standard
    port), finds their public overlay URL, and OBS's overlay page + socket get a fan's tip."""
    creator = proxied.client()
    form = creator.get("/signup")
    signed_up = creator.post("/signup", urlencode({
        "csrf_token": csrf_token(form), "displayName": "Proxy Creator", "role": "creator",
        "email": f"proxy-creator-{uuid.uuid4().hex[:12]}@example.com", "password": "correct-horse-1"}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": proxied.origin,
                 "Referer": f"{proxied.origin}/signup"})
    assert signed_up.status in (302, 303), (signed_up.status, signed_up.text[:500])
    assert_cookies_secure(signed_up)
    creator_id = creator.get("/api/auth/me").json()["user"]["id"]

    settings = creator.get("/creator/settings")
    assert settings.status == 200, settings.text[:500]
    found = re.search(re.escape(proxied.origin) + r"/overlay/([A-Za-z0-9_-]+)", settings.text)
    assert found, "the overlay URL shown to the creator is not the public https one"
    secret = found.group(1)

    obs = proxied.client()  # OBS: no cookies, frames the page
    page = obs.get(f"/overlay/{secret}")
    assert page.status == 200 and f'ws-connect="/ws/overlay/{secret}"' in page.text
    assert page.all("X-Frame-Options") == [] and "frame-ancestors *" in page.header("Content-Security-Policy")

    refused = handshake(proxied.origin, f"/ws/overlay/{secret}", {"Origin": "https://evil.example"},
                        ssl_context=proxied.tls)
    assert refused.status == 403 and b"bad_origin" in refused.body

    ws_base = proxied.origin.replace("https://", "wss://")
    overlay = Viewer(f"{ws_base}/ws/overlay/{secret}", {"Origin": proxied.origin}, ssl_context=proxied.tls)
    me = None
    try:
        # The creator's own page socket, by session cookie: its state sync proves the
        # app's pub/sub listener is up before the tip is published.
        cookie = "; ".join(f"{k}={v}" for k, v in creator.cookies.items())
        me = Viewer(f"{ws_base}/ws/me", {"Origin": proxied.origin, "Cookie": cookie}, ssl_context=proxied.tls)
        assert me.wait_for("</", timeout=10), "no state sync on /ws/me through the proxy"

        fan = proxied.client()
        registered = register(fan)
        assert registered.status == 201, registered.text
        bearer = {"Authorization": f"Bearer {registered.json()['token']}"}
        bought = fan.post("/api/tokens/purchase", {"amountTokens": 500},
                          headers={**bearer, "Idempotency-Key": str(uuid.uuid4())})
        assert bought.status == 201, bought.text
        tipped = fan.post("/api/tips/send", {"toCreatorId": creator_id, "amountTokens": 25,
                                             "message": "through nginx"},
                          headers={**bearer, "Idempotency-Key": str(uuid.uuid4())})
        assert tipped.status == 201, tipped.text
        tip_id = tipped.json()["tip"]["id"]

        item = overlay.wait_for(f'id="tip-{tip_id}"', timeout=10)
        assert item is not None, overlay.messages
        assert "through nginx" in item
    finally:
        overlay.close()
        if me is not None:
            me.close()


def test_per_ip_signup_limit_counts_the_real_client_behind_the_proxy(proxied):
    """Each client has its own budget; a forged X-Forwarded-For (even another
    client's address) neither escapes it nor spends someone else's."""
    greedy, other = proxied.client(), proxied.client()
    for i in range(SIGNUPS_PER_HOUR):
        resp = register(greedy, headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})
        assert resp.status == 201, resp.text
    refused = register(greedy, headers={"X-Forwarded-For": other.source})
    assert refused.status == 429 and refused.json()["code"] == "rate_limited", refused.text
    assert register(other).status == 201


def test_a_body_over_the_apps_limit_gets_its_json_413_not_nginxs_page(proxied):
    resp = proxied.client().post("/api/auth/register", {"email": "x" * 100_000})
    assert resp.status == 413
    assert resp.json()["code"] == "payload_too_large"
