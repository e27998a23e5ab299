"""Unexpected failures still get the app's own 500 answer (DESIGN.md §7: never a raw 500)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.conftest import fresh_client
from tests.conftest import csrf_from, make_config, unique_email

PASSWORD = "correct-horse-1"


@pytest.fixture()
def boom_app(app, services):
    """A fresh app (same database) with routes whose SQL fails, as a bug in a query would."""
    application = create_app(make_config(services))

    def page_boom():
        db.session.execute(text("SELECT 1/0"))
        return "unreachable"

    def api_boom():
        db.session.execute(text("SELECT 1/0"))
        return {"unreachable": True}

    application.add_url_rule("/test-boom", "test_boom", page_boom)
    application.add_url_rule("/api/test-boom", "test_api_boom", api_boom)
    return application


@pytest.fixture()
def logged_in(boom_app):
    client = fresh_client(boom_app)
    email = unique_email("boom")
    assert client.post("/api/auth/register", json={"email": email, "password": PASSWORD,
                                                   "displayName": "Boom", "role": "fan"}).status_code == 201
    resp = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_from(client, "/login")})
    assert resp.status_code == 303
    return client


def test_failed_query_on_a_page_for_a_logged_in_user_renders_the_500_page(logged_in):
    """The error page (its nav balance needs the database) renders even after the
    failed statement aborted the request's transaction."""
    resp = logged_in.get("/test-boom")
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert "Something went wrong on our side and nothing was changed." in html
    assert "Traceback" not in html and "ZeroDivision" not in html and "division by zero" not in html


def test_failed_query_on_the_api_answers_500_json(logged_in):
    resp = logged_in.get("/api/test-boom")
    assert resp.status_code == 500
    assert resp.get_json()["code"] == "internal_error"


def test_the_next_request_after_a_failure_works(logged_in):
    assert logged_in.get("/test-boom").status_code == 500
    assert logged_in.get("/api/wallet/me").status_code == 200
