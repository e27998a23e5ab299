"""Response headers: CSP and friends (DESIGN.md §10)."""
from urllib.parse import urlsplit

from flask import current_app, g, request

from app.payments.providers import provider

# htmx runs from /static with its inline indicator styles disabled
# (see base.html's htmx-config), so no 'unsafe-inline' is needed anywhere.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src {connect}; media-src {media}; worker-src 'self' blob:; font-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action {form}; frame-ancestors {ancestors}")


def content_security_policy() -> str:
    """The policy of this request's response: the app's own origin only, and:
    - connect-src: the request's own `ws(s)://host` — CSP3's 'self' already
      covers same-origin WebSockets, but Chromium before 70 and Safari before
      its 2022 fix (WebKit bug 235873) don't, and naming it lets in nothing
      else — and the media server's origin (hls.js fetches over XHR);
    - media-src: blob: (hls.js feeds <video> a MediaSource URL) and the media
      server's origin (Safari plays HLS natively);
    - worker-src: blob: — hls.js transmuxes video in a Web Worker it starts from
      a blob: URL of its own code (off the main thread, which matters on phones);
      scripts themselves stay 'self' only;
    - form-action: the payment provider's hosted pages (Stripe Checkout): a
      plain buy form is answered with a redirect there, which browsers check;
    - frame-ancestors: * on the one framable page (the OBS overlay, `g.framable`),
      'none' everywhere else.
    """
    media = _origin(current_app.config["MEDIA_HLS_BASE_URL"])
    own_ws = f"{'wss' if request.scheme == 'https' else 'ws'}://{request.host}" if request.host else None
    return _CSP.format(connect=_sources("'self'", own_ws, media), media=_sources("'self'", "blob:", media),
                       form=_sources("'self'", *provider().page_origins()),
                       ancestors="*" if g.get("framable") else "'none'")


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _sources(*sources) -> str:
    return " ".join(s for s in sources if s)


def register_security_headers(app):
    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", content_security_policy())
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if not g.get("framable"):  # only the OBS overlay may be framed
            resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
        if app.config["APP_ENV"] == "production":
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if resp.mimetype == "text/html" or resp.is_json:
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp
