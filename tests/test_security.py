"""Security headers and cookie flags (DESIGN.md §10)."""
import re

from tests.conftest import fresh_client

MEDIA = "https://media.example.com:8443"


def _csp(resp) -> dict:
    """{directive: [sources]} of the response's Content-Security-Policy."""
    directives = (part.split() for part in resp.headers["Content-Security-Policy"].split(";"))
    return {d[0]: d[1:] for d in directives if d}


def test_pages_send_csp_and_refuse_framing(client):
    resp = client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"


def test_csp_names_no_bare_scheme_and_no_origin_but_its_own(client):
    """No `ws:`, `wss:`, `https:` (any host): connections go to the app itself
    ('self' and its own WebSocket origin, for browsers whose 'self' omits ws)."""
    csp = _csp(client.get("/"))
    assert csp["connect-src"] == ["'self'", "ws://localhost"]
    assert csp["media-src"] == ["'self'", "blob:"]
    assert csp["worker-src"] == ["'self'", "blob:"]  # hls.js's worker; scripts stay 'self'
    assert csp["script-src"] == ["'self'"]
    assert [src for sources in csp.values() for src in sources
            if re.fullmatch(r"[a-z][a-z0-9+.-]*:", src) and src not in ("data:", "blob:")] == []


def test_csp_allows_the_configured_media_origin_and_nothing_else(make_app):
    media_app = make_app(MEDIA_HLS_BASE_URL=f"{MEDIA}/hls")
    csp = _csp(fresh_client(media_app).get("/", base_url="https://pm.example"))
    assert csp["connect-src"] == ["'self'", "wss://pm.example", MEDIA]
    assert csp["media-src"] == ["'self'", "blob:", MEDIA]


def test_the_overlay_gets_the_apps_own_csp_only_framable(make_app, make_creator):
    """One place builds the policy: the OBS overlay's differs from every page's only in frame-ancestors."""
    from app.tips.service import overlay_secret
    client = fresh_client(make_app(MEDIA_HLS_BASE_URL=f"{MEDIA}/hls"))
    page = _csp(client.get("/"))
    overlay = _csp(client.get(f"/overlay/{overlay_secret(make_creator())}"))
    assert overlay.pop("frame-ancestors") == ["*"] and page.pop("frame-ancestors") == ["'none'"]
    assert overlay == page


def test_api_answers_carry_the_same_headers_and_are_not_cached(client):
    resp = client.get("/healthz")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_and_samesite(client, make_fan):
    fan = make_fan()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    resp = client.post("/login", data={"email": fan.email, "password": fan.test_password, "csrf_token": token})
    cookie = next(v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure(make_app):
    prod = make_app(APP_ENV="production", ALLOW_DEMO_PAYMENTS=True)
    assert prod.config["SESSION_COOKIE_SECURE"] and prod.config["REMEMBER_COOKIE_SECURE"]


def test_unknown_api_route_is_json_404(client):
    resp = client.get("/api/nope")
    assert resp.status_code in (401, 404)  # anonymous: 401 first, never an HTML page
    assert resp.is_json and set(resp.get_json()) >= {"error", "code"}
