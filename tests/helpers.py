"""Assertions shared by the API tests."""
from __future__ import annotations


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
