"""TRUSTED_PROXIES (DESIGN.md §14): how many proxy hops of X-Forwarded-For/-Proto/-Host
the app believes. Per-IP rate limits key on what it believes (Flask-Limiter's
`get_remote_address`)."""
from flask import request
from flask_limiter.util import get_remote_address

# What a client (or a chain of proxies) may send; the test client connects from 127.0.0.1.
FORWARDED = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "tips.example.com:8443", "X-Forwarded-Port": "9999"}


def _seen(make_app, **config) -> dict:
    """The client address, scheme and host a request with FORWARDED looks like to the app."""
    app = make_app(**config)

    @app.get("/_seen")
    def _seen_view():
        return {"remote": request.remote_addr, "limitKey": get_remote_address(), "scheme": request.scheme,
                "host": request.host}
    return app.test_client().get("/_seen", headers=FORWARDED).get_json()


def test_with_no_trusted_proxy_forwarded_headers_are_ignored(make_app):
    assert _seen(make_app) == {"remote": "127.0.0.1", "limitKey": "127.0.0.1", "scheme": "http",
                               "host": "localhost"}


def test_one_trusted_proxy_honours_exactly_the_last_hop(make_app):
    """The last X-Forwarded-* entry is the one our proxy wrote; whatever came before it
    is the client's to invent. X-Forwarded-Port is not believed (the host carries the port)."""
    assert _seen(make_app, TRUSTED_PROXIES=1) == {"remote": "203.0.113.9", "limitKey": "203.0.113.9",
                                                  "scheme": "https", "host": "tips.example.com:8443"}


def test_two_trusted_proxies_honour_the_hop_before_the_last(make_app):
    assert _seen(make_app, TRUSTED_PROXIES=2)["remote"] == "198.51.100.7"
