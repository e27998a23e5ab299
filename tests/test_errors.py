"""app/errors.py: nothing that runs after a commit may turn a success into an error
(DESIGN.md §7). A request whose action committed and whose answer then failed to
build is answered as done: htmx reloads the page, a plain form goes back to it, an
API client is told the action completed; never "nothing was changed".

The failures are provoked honestly: a template render (or `to_dict`) patched to
raise inside the real view, after its real commit, or an `after_request` hook that
raises on a fresh app.
"""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.extensions import db
from app.wallet import routes as wallet_routes
from app.wallet.models import Purchase
from tests.conftest import csrf_from, fresh_client

DONE = "Done. The page was reloaded to show the result."


def purchases_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM purchases WHERE user_id = :u"), {"u": user_id})


def balance_of(client) -> int:
    return client.get("/api/wallet/me").get_json()["balance"]


def fail_rendering(monkeypatch, template: str) -> None:
    """Make the wallet routes' render of `template` raise, as a bug in it would."""
    real = wallet_routes.render_template

    def render(name, **context):
        if name == template:
            raise RuntimeError(f"test: {template} failed to render")
        return real(name, **context)
    monkeypatch.setattr(wallet_routes, "render_template", render)


def purchase_form(csrf: str, amount: str = "500") -> dict:
    return {"csrf_token": csrf, "idempotency_key": str(uuid.uuid4()), "amountTokens": amount}


def test_an_htmx_purchase_whose_answer_fails_after_the_commit_reloads_the_page_instead_of_an_error(
        client, make_fan, login, monkeypatch):
    fan = make_fan()
    csrf = login(fan)
    fail_rendering(monkeypatch, "wallet/_purchase_done.html")
    resp = client.post("/wallet/purchase", data=purchase_form(csrf),
                       headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/wallet"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["HX-Refresh"] == "true"
    assert "nothing was changed" not in resp.get_data(as_text=True)
    assert balance_of(client) == 500 and purchases_of(fan.id) == 1
    # The reloaded page shows the new state, and says so.
    html = client.get("/wallet").get_data(as_text=True)
    assert DONE in html and 'data-testid="balance">500<' in html


def test_a_plain_form_purchase_whose_answer_fails_after_the_commit_goes_back_to_the_page(
        client, make_fan, login, monkeypatch):
    fan = make_fan()
    csrf = login(fan)
    fail_rendering(monkeypatch, "wallet/wallet.html")
    resp = client.post("/wallet/purchase", data=purchase_form(csrf),
                       headers={"Referer": "http://localhost/wallet?page=1"})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert resp.headers["Location"] == "/wallet?page=1"
    assert purchases_of(fan.id) == 1
    monkeypatch.undo()
    html = client.get("/wallet").get_data(as_text=True)
    assert DONE in html and 'data-testid="balance">500<' in html


@pytest.mark.parametrize("referer", [None, "http://evil.example/wallet", "http://[", "//evil.example/x",
                                     "javascript:alert(1)", "http://localhost/\\evil.example",
                                     "http://localhost//evil.example"])
def test_going_back_after_such_a_failure_never_leaves_the_site(client, make_fan, login, monkeypatch, referer):
    csrf = login(make_fan())
    fail_rendering(monkeypatch, "wallet/wallet.html")
    headers = {"Referer": referer} if referer else {}
    resp = client.post("/wallet/purchase", data=purchase_form(csrf), headers=headers)
    assert resp.status_code == 303 and resp.headers["Location"] == "/"


def test_an_api_purchase_whose_answer_fails_after_the_commit_says_it_completed_and_a_replay_answers_it(
        client, make_fan, api_headers, monkeypatch):
    fan = make_fan()
    headers = {**api_headers(fan), "Idempotency-Key": str(uuid.uuid4())}

    def broken(self):
        raise RuntimeError("test: to_dict failed")
    monkeypatch.setattr(Purchase, "to_dict", broken)
    resp = client.post("/api/tokens/purchase", json={"amountTokens": 700}, headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["completed"] is True and body["code"] == "completed_without_answer"
    assert "Idempotency-Key" in body["message"] and "error" not in body
    monkeypatch.undo()
    # The same key again: the first purchase's answer, nothing bought twice.
    replay = client.post("/api/tokens/purchase", json={"amountTokens": 700}, headers=headers)
    assert replay.status_code == 201 and replay.get_json()["newBalance"] == 700
    assert purchases_of(fan.id) == 1


def test_a_failing_after_request_hook_after_the_commit_is_answered_as_done_too(make_app, make_fan, api_headers):
    """The after-request path: Flask wraps the hook's exception in an InternalServerError."""
    fan = make_fan()
    application = make_app()

    @application.after_request
    def boom(response):
        raise RuntimeError("test: after_request failed")

    c = fresh_client(application)
    resp = c.post("/api/tokens/purchase", json={"amountTokens": 300},
                  headers={**api_headers(fan), "Idempotency-Key": str(uuid.uuid4())})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["completed"] is True
    assert purchases_of(fan.id) == 1


@pytest.fixture()
def test_routes(make_app):
    """A fresh app with routes that fail in the ways the rules are about."""
    application = make_app()

    def commit_then_fail():
        db.session.execute(text("SELECT 1"))
        db.session.commit()
        raise RuntimeError("test: failed after a commit")

    def fail():
        raise RuntimeError("test: failed before any commit")

    def bookkeeping():
        # As authentication's own write (a token's last use) would, before the view runs.
        db.session.execute(text("SELECT 1"))
        db.session.commit()

    application.add_url_rule("/test-commit-then-fail", "commit_then_fail", commit_then_fail, methods=["GET"])
    application.add_url_rule("/test-fail", "fail", fail, methods=["POST"])
    application.before_request_funcs.setdefault(None, []).insert(0, bookkeeping)
    return application


def test_only_a_failure_that_changed_nothing_says_nothing_was_changed(test_routes):
    """A page that committed in passing (a secret made on first view) did change something;
    a commit before the view (authentication's bookkeeping) is not the action that failed."""
    c = fresh_client(test_routes)
    resp = c.get("/test-commit-then-fail")
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert "Something went wrong on our side. Please try again." in html and "nothing was changed" not in html
    resp = c.post("/test-fail", data={"csrf_token": csrf_from(c, "/login")})
    assert resp.status_code == 500 and "HX-Refresh" not in resp.headers
    assert "Something went wrong on our side and nothing was changed." in resp.get_data(as_text=True)
