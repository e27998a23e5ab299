"""Response headers: CSP and friends (DESIGN.md §10)."""
from urllib.parse import urlsplit

from flask import g

# htmx runs from /static with its inline indicator styles disabled
# (see base.html's htmx-config), so no 'unsafe-inline' is needed anywhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' ws: wss:; media-src 'self' blob: https:; font-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def csp_for(media_base_url: str) -> str:
    """CSP, letting the player fetch from the media server's origin (hls.js uses XHR)."""
    parts = urlsplit(media_base_url)
    if not parts.scheme or not parts.netloc:
        return CSP
    origin = f"{parts.scheme}://{parts.netloc}"
    return CSP.replace("connect-src 'self' ws: wss:", f"connect-src 'self' ws: wss: {origin}") \
              .replace("media-src 'self' blob: https:", f"media-src 'self' blob: https: {origin}")


def register_security_headers(app):
    csp = csp_for(app.config["MEDIA_HLS_BASE_URL"])

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", csp)
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
