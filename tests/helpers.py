"""Helpers shared by tests of several packages: API error assertions, threads released
together, logging a test client in, the text a person reads on a page, what a job publishes."""
from __future__ import annotations

import html as htmllib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from flask import current_app

from app.extensions import db
from app.redis_client import get_redis


def assert_error(resp, status: int, code: str | None = None, field: str | None = None) -> dict:
    """The response is a JSON error `{error, code[, field]}` with this status (DESIGN.md §7)."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json, resp.get_data(as_text=True)
    body = resp.get_json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    if code:
        assert body["code"] == code, body
    if field:
        assert body.get("field") == field, body
    return body


def run_together(app, n, fn):
    """Run fn(i) in n threads released at the same instant; each has its own app
    context (and so its own DB session). Returns the results or exceptions."""
    barrier = threading.Barrier(n)

    def worker(i):
        with app.app_context():
            barrier.wait()
            try:
                return fn(i)
            except Exception as exc:  # returned for inspection, not swallowed
                db.session.rollback()
                return exc
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(worker, range(n)))


def log_in(client, user) -> str:
    """Log `user` in through /login on `client` (of any app); returns the session's CSRF token."""
    from tests.conftest import csrf_from
    token = csrf_from(client, "/login")
    resp = client.post("/login", data={"email": user.email, "password": user.test_password, "csrf_token": token})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return csrf_from(client, "/wallet")


def visible(html: str) -> str:
    """The text a person reads: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


@contextmanager
def published(channel: str, run_jobs):
    """A list of the messages published on `channel` (a name without this run's Redis prefix)
    while the block runs and once the jobs it queued have run (`run_jobs`, as the worker
    would); filled when the block ends, after half a second without a message."""
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(current_app.config["REDIS_PREFIX"] + channel)
    pubsub.get_message(timeout=1)  # the subscription is confirmed before anything is published
    messages: list[str] = []
    try:
        yield messages
        run_jobs()
        quiet = 0
        while quiet < 2:
            message = pubsub.get_message(timeout=0.25)
            quiet = 0 if message else quiet + 1
            if message:
                messages.append(message["data"].decode())
    finally:
        pubsub.close()
