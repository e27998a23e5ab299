"""A fan's daily spending cap (DESIGN.md §12 "Fan protections"): `GET/POST /api/fan/limits`,
tips and tickets past the cap in a UTC day → 403 `spend_limit_reached`, a call request needs
room for its first two blocks. Real PostgreSQL, real threads, an injected clock for the day.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from app import ledger
from app.auth.models import User
from app.calls import service as calls
from app.errors import Forbidden
from app.extensions import db
from app.protections import service as protections
from app.streams import tickets
from app.tips import service as tips
from app.wallet import service as wallet
from tests.clock import clock  # noqa: F401  (fixture)
from tests.helpers import assert_error, run_together

LIMIT_MAX = protections.LIMIT_MAX


def set_limit(client, headers, value):
    return client.post("/api/fan/limits", json={"dailySpendTokens": value}, headers=headers)


def tip(client, headers, creator_id, amount, key=None, **extra):
    return client.post("/api/tips/send", json={"toCreatorId": creator_id, "amountTokens": amount, **extra},
                       headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())})


def tips_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM tips WHERE sender_id = :u"), {"u": user_id})


@pytest.fixture()
def fan(make_fan, api_headers):
    f = make_fan(balance=1000)
    f.headers = api_headers(f)
    return f


# ---- the limit itself --------------------------------------------------------------------------

def test_get_limits_of_a_fan_without_a_cap_is_null_and_what_they_spent(client, fan, make_creator):
    assert client.get("/api/fan/limits", headers=fan.headers).get_json() == {
        "limits": {"dailySpendTokens": None, "spentTodayTokens": 0}}
    tip(client, fan.headers, make_creator().id, 30)
    assert client.get("/api/fan/limits", headers=fan.headers).get_json()["limits"]["spentTodayTokens"] == 30


def test_post_sets_the_cap_and_null_clears_it(client, fan):
    resp = set_limit(client, fan.headers, 250)
    assert resp.status_code == 200
    assert resp.get_json() == {"limits": {"dailySpendTokens": 250, "spentTodayTokens": 0}}
    assert db.session.scalar(text("SELECT daily_spend_limit_tokens FROM users WHERE id = :u"), {"u": fan.id}) == 250
    assert set_limit(client, fan.headers, None).get_json()["limits"]["dailySpendTokens"] is None
    assert set_limit(client, fan.headers, LIMIT_MAX).get_json()["limits"]["dailySpendTokens"] == LIMIT_MAX


@pytest.mark.parametrize("value", [0, -1, LIMIT_MAX + 1, 10**30, 1.5, True, False, "100", "", "٣", [], {}])
def test_a_cap_that_is_not_a_whole_number_from_1_is_422_and_changes_nothing(client, fan, value):
    set_limit(client, fan.headers, 100)
    assert_error(set_limit(client, fan.headers, value), 422, "invalid_value", "dailySpendTokens")
    assert client.get("/api/fan/limits", headers=fan.headers).get_json()["limits"]["dailySpendTokens"] == 100


def test_a_body_without_dailySpendTokens_is_422_not_a_silent_clear(client, fan):
    set_limit(client, fan.headers, 100)
    assert_error(client.post("/api/fan/limits", json={}, headers=fan.headers), 422, field="dailySpendTokens")
    assert client.get("/api/fan/limits", headers=fan.headers).get_json()["limits"]["dailySpendTokens"] == 100


def test_anonymous_is_401(client):
    assert_error(client.get("/api/fan/limits"), 401)
    assert_error(client.post("/api/fan/limits", json={"dailySpendTokens": 5}), 401)


# ---- tips ---------------------------------------------------------------------------------------

def test_tips_up_to_the_cap_pass_and_the_one_past_it_is_403_with_what_is_left(client, fan, make_creator):
    creator = make_creator()
    set_limit(client, fan.headers, 100)
    assert tip(client, fan.headers, creator.id, 60).status_code == 201
    err = assert_error(tip(client, fan.headers, creator.id, 41), 403, "spend_limit_reached")
    assert (err["limitTokens"], err["spentTodayTokens"], err["remainingTokens"]) == (100, 60, 40)
    assert "40 tokens left today" in err["error"] and "midnight UTC" in err["error"]
    assert tip(client, fan.headers, creator.id, 40).status_code == 201  # exactly the cap
    assert_error(tip(client, fan.headers, creator.id, 1), 403, "spend_limit_reached")
    assert tips_of(fan.id) == 2 and wallet.wallet_balance(fan) == 900


def test_spending_before_the_cap_was_set_counts_and_lowering_it_takes_effect_at_once(client, fan, make_creator):
    creator = make_creator()
    tip(client, fan.headers, creator.id, 80)
    set_limit(client, fan.headers, 50)
    err = assert_error(tip(client, fan.headers, creator.id, 1), 403, "spend_limit_reached")
    assert err["remainingTokens"] == 0
    set_limit(client, fan.headers, None)
    assert tip(client, fan.headers, creator.id, 500).status_code == 201


def test_purchases_do_not_count_as_spending(client, fan):
    wallet.purchase_tokens(fan, 500, f"more-{uuid.uuid4()}")
    assert protections.spent_today(fan.id) == 0


def test_the_cap_resets_at_midnight_utc(client, fan, make_creator, clock):  # noqa: F811
    creator = make_creator()
    set_limit(client, fan.headers, 100)
    tip(client, fan.headers, creator.id, 100)
    assert_error(tip(client, fan.headers, creator.id, 1), 403, "spend_limit_reached")
    midnight = protections.next_reset(clock.now)
    clock.at(midnight - timedelta(seconds=1))
    assert_error(tip(client, fan.headers, creator.id, 1), 403, "spend_limit_reached")
    clock.at(midnight)
    assert client.get("/api/fan/limits", headers=fan.headers).get_json()["limits"]["spentTodayTokens"] == 0
    assert tip(client, fan.headers, creator.id, 100).status_code == 201


def test_a_replay_of_a_tip_after_the_cap_was_reached_returns_that_tip(client, fan, make_creator):
    creator = make_creator()
    set_limit(client, fan.headers, 100)
    first = tip(client, fan.headers, creator.id, 100, key="cap-replay")
    again = tip(client, fan.headers, creator.id, 100, key="cap-replay")
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert tips_of(fan.id) == 1


def test_the_cap_refusal_comes_before_the_confirmation_question(client, make_fan, api_headers, make_creator):
    rich = make_fan(balance=5000)
    headers = api_headers(rich)
    set_limit(client, headers, 2000)
    assert_error(tip(client, headers, make_creator().id, 3000), 403, "spend_limit_reached")


# ---- concurrency: real threads --------------------------------------------------------------------

def test_cap_100_ten_concurrent_tips_of_20_exactly_5_succeed(app, fan, make_creator):
    creator_id, fan_id = make_creator().id, fan.id
    protections.set_daily_limit(fan, 100)

    def send(i):
        return tips.send_tip(db.session.get(User, fan_id), creator_id, 20, "", None, f"cap-{uuid.uuid4()}").new_balance

    results = run_together(app, 10, send)
    ok = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Forbidden)]
    assert len(ok) == 5 and len(refused) == 5, results
    assert all(r.code == "spend_limit_reached" for r in refused)
    assert sorted(ok) == [900, 920, 940, 960, 980]
    db.session.rollback()
    assert protections.spent_today(fan_id) == 100 and tips_of(fan_id) == 5
    assert ledger.verify() == []


def test_cap_100_ten_concurrent_http_tips_of_20_exactly_5_get_201(app, fan, make_creator):
    creator_id = make_creator().id
    set_limit(app.test_client(), fan.headers, 100)

    def send(i):
        resp = tip(app.test_client(), fan.headers, creator_id, 20)
        return resp.status_code

    statuses = run_together(app, 10, send)
    assert statuses.count(201) == 5 and statuses.count(403) == 5, statuses
    assert tips_of(fan.id) == 5


def test_tips_and_tickets_at_once_share_one_cap(app, fan, make_creator, make_stream):
    """Five tickets of 30 and five tips of 30 at once under a cap of 150: exactly five pass."""
    creator = make_creator()
    shows = [make_stream(creator, type_="private", ticket_price=30).id for _ in range(5)]
    fan_id, creator_id = fan.id, creator.id
    protections.set_daily_limit(fan, 150)

    def pay(i):
        payer = db.session.get(User, fan_id)
        if i < 5:
            from app.streams.models import Stream
            return tickets.checkout(payer, db.session.get(Stream, shows[i])).created
        return tips.send_tip(payer, creator_id, 30, "", None, str(uuid.uuid4())).tip.id is not None

    results = run_together(app, 10, pay)
    assert results.count(True) == 5, results
    assert all(isinstance(r, Forbidden) and r.code == "spend_limit_reached" for r in results if r is not True)
    db.session.rollback()
    assert protections.spent_today(fan_id) == 150
    assert ledger.verify() == []


# ---- tickets and calls ------------------------------------------------------------------------------

def test_a_ticket_past_the_cap_is_403_and_moves_nothing(client, fan, make_creator, make_stream):
    show = make_stream(make_creator(), type_="private", ticket_price=300)
    set_limit(client, fan.headers, 200)
    resp = client.post(f"/api/streams/{show.id}/tickets/checkout", headers=fan.headers)
    err = assert_error(resp, 403, "spend_limit_reached")
    assert err["remainingTokens"] == 200
    assert wallet.wallet_balance(fan) == 1000
    set_limit(client, fan.headers, 300)
    assert client.post(f"/api/streams/{show.id}/tickets/checkout", headers=fan.headers).status_code in (200, 201)
    assert protections.spent_today(fan.id) == 300


def test_the_ticket_gate_shows_the_cap_refusal_with_what_is_left(client, fan, make_creator, make_stream, login):
    show = make_stream(make_creator(), type_="private", ticket_price=300)
    protections.set_daily_limit(fan, 120)
    csrf = login(fan)
    resp = client.post(f"/streams/{show.id}/ticket", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert 'data-testid="gate-error"' in html and "120 tokens left today" in html


def test_a_call_request_needs_the_cap_to_allow_its_first_two_blocks(client, fan, make_creator, no_open_calls):
    creator = make_creator()
    calls.update_settings(creator, 60, True)  # two 30-second blocks: 30 + 30
    needed = calls.minimum_balance(60)
    set_limit(client, fan.headers, needed - 1)
    resp = client.post("/api/calls/init", json={"creatorId": creator.id}, headers=fan.headers)
    err = assert_error(resp, 403, "spend_limit_reached")
    assert err["remainingTokens"] == needed - 1
    set_limit(client, fan.headers, needed)
    assert client.post("/api/calls/init", json={"creatorId": creator.id}, headers=fan.headers).status_code == 201


def test_call_blocks_count_as_spending(make_call, clock, no_open_calls):  # noqa: F811
    scene = make_call(rate=60)
    clock.advance(seconds=31)
    calls.meter()
    db.session.rollback()
    assert protections.spent_today(scene.fan.id) == 60  # blocks 0 and 1, each 30


def test_the_call_modal_says_when_the_cap_leaves_too_little_for_a_call(client, fan, make_creator, no_open_calls,
                                                                      login):
    """From the Call modal (htmx), the cap's refusal comes back in the modal, next to "Call now"."""
    creator = make_creator()
    calls.update_settings(creator, 60, True)
    protections.set_daily_limit(fan, calls.minimum_balance(60) - 1)
    csrf = login(fan)
    resp = client.post("/calls", data={"creatorId": creator.id, "rate": 60, "csrf_token": csrf},
                       headers={"HX-Request": "true"})
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert "daily spending limit" in html and 'role="dialog"' in html
