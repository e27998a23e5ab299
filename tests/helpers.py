"""Helpers shared by tests of several packages: API error assertions, threads released together."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from app.extensions import db


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
