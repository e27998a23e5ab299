"""The daily spending limit's form on /wallet (HTMX): explains the rule, saves, errors next
to the field, empty removes the limit."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import text

from app.auth.models import User
from app.extensions import db
from app.tips import service as tips
from tests.helpers import visible

HTMX = {"HX-Request": "true"}


@pytest.fixture()
def fan(client, make_fan, login):
    f = make_fan(balance=500)
    f.csrf = login(f)
    return f


def post(client, fan, value, htmx=True):
    return client.post("/wallet/limits", data={"csrf_token": fan.csrf, "dailySpendTokens": value},
                       headers=HTMX if htmx else {})


def cap_of(fan) -> int | None:
    return db.session.scalar(text("SELECT daily_spend_limit_tokens FROM users WHERE id = :u"), {"u": fan.id})


def test_the_wallet_page_explains_the_rule(client, fan):
    html = visible(client.get("/wallet").get_data(as_text=True))
    assert "Daily spending limit" in html
    assert "tips, tickets and calls stop once you've spent that many tokens today (UTC); it resets at midnight UTC" in html
    assert "No limit set." in html


def test_saving_a_limit_shows_it_with_what_is_left_today(client, fan, make_creator):
    tips.send_tip(db.session.get(User, fan.id), make_creator().id, 30, "", None, str(uuid.uuid4()))
    resp = post(client, fan, "1,000")
    assert resp.status_code == 200 and cap_of(fan) == 1000
    html = visible(resp.get_data(as_text=True))
    assert "Saved: at most 1,000 tokens a day." in html
    assert "Spent today: 30 of 1,000 tokens · 970 left today." in html
    assert "970 left today" in visible(client.get("/wallet").get_data(as_text=True))


def test_an_empty_field_removes_the_limit(client, fan):
    post(client, fan, "200")
    resp = post(client, fan, "  ")
    assert resp.status_code == 200 and cap_of(fan) is None
    assert "Saved: no daily limit." in visible(resp.get_data(as_text=True))


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "abc", "٣", "99999999999"])
def test_a_bad_value_is_shown_next_to_the_field_and_saves_nothing(client, fan, value):
    post(client, fan, "200")
    resp = post(client, fan, value)
    assert resp.status_code == 422 and cap_of(fan) == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'id="daily-spend-limit"[^>]*aria-describedby="daily-spend-limit-error" aria-invalid="true"',
                     html, re.S)
    assert 'id="daily-spend-limit-error" role="alert"' in html


def test_without_javascript_it_goes_back_to_the_wallet(client, fan):
    resp = post(client, fan, "300", htmx=False)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/wallet#spend-limit")
    assert cap_of(fan) == 300
