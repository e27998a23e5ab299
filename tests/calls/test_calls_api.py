"""The calls JSON API end to end with bearer tokens (DESIGN.md §7): creator
settings, call requests, accept/decline/end, pause/active/stop, the billing
history and the metering webhook. Real PostgreSQL and Redis; the clock is
injected so a call's charges are exact."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from app import ledger
from app.auth.models import User
from app.calls import service
from app.extensions import db
from tests.clock import install_clock
from tests.calls.helpers import event_types, events, fresh_call, wallet
from tests.conftest import fresh_client
from tests.helpers import assert_error, run_together

pytestmark = pytest.mark.usefixtures("no_open_calls")

SECRET = "billing-webhook-secret-for-tests"
BAD_JSON = ["[]", '"hello"', "nope", "", "{", "null", "42"]


# ---- helpers ---------------------------------------------------------------------------------------


def settings_of(user_id: int) -> tuple:
    db.session.rollback()
    row = db.session.execute(text("SELECT call_rate_tokens_per_min, calls_enabled FROM users WHERE id = :u"),
                             {"u": user_id}).one()
    return tuple(row)


def calls_of(fan_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM calls WHERE fan_id = :f"), {"f": fan_id})


def post_settings(client, headers, body):
    return client.post("/api/creator/settings", json=body, headers=headers)


def init(client, headers, body):
    return client.post("/api/calls/init", json=body, headers=headers)


def ok(resp, status=200) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture()
def creator_open(make_creator, api_headers):
    """make(rate=60, enabled=True) → (creator, creator's headers)."""
    def make(rate=60, enabled=True):
        creator = make_creator()
        service.update_settings(creator, rate, enabled)
        return creator, api_headers(creator)
    return make


@pytest.fixture()
def requested(client, creator_open, make_fan, api_headers):
    """requested(rate=60, balance=1000) → (fan headers, creator headers, call id, fan id, creator id),
    the call requested through the API."""
    def make(rate=60, balance=1000):
        creator, creator_headers = creator_open(rate)
        fan = make_fan(balance=balance)
        fan_headers = api_headers(fan)
        call = ok(init(client, fan_headers, {"creatorId": creator.id}), 201)["call"]
        return fan_headers, creator_headers, call["id"], fan.id, creator.id
    return make


@pytest.fixture()
def active(client, clock, requested):
    """active(rate=60, balance=1000) → like `requested`, accepted by the creator with both
    parties present (so billing runs continuously from the injected clock's now)."""
    def make(rate=60, balance=1000):
        fan_headers, creator_headers, call_id, fan_id, creator_id = requested(rate, balance)
        service.presence_changed(call_id, "fan", True)
        service.presence_changed(call_id, "creator", True)
        ok(client.post(f"/api/calls/{call_id}/accept", headers=creator_headers))
        return fan_headers, creator_headers, call_id, fan_id, creator_id
    return make


@pytest.fixture()
def outsider(make_creator, make_fan, api_headers):
    """Headers of someone who is on no call: a fan and a creator."""
    return [api_headers(make_fan(balance=1000)), api_headers(make_creator())]


# ---- POST /api/creator/settings --------------------------------------------------------------------


def test_a_creator_sets_the_rate_and_opens_or_closes_calls(client, make_creator, api_headers):
    creator = make_creator()
    headers = api_headers(creator)
    assert settings_of(creator.id) == (None, False)
    body = ok(post_settings(client, headers, {"callRateTokensPerMin": 25, "callsEnabled": True}))
    assert body == {"settings": {"callRateTokensPerMin": 25, "callsEnabled": True}}
    assert settings_of(creator.id) == (25, True)
    for rate, enabled in ((1, True), (100_000, False), (60, True)):
        body = ok(post_settings(client, headers, {"callRateTokensPerMin": rate, "callsEnabled": enabled}))
        assert body == {"settings": {"callRateTokensPerMin": rate, "callsEnabled": enabled}}
        assert settings_of(creator.id) == (rate, enabled)


@pytest.mark.parametrize("body,field", [
    ({"callRateTokensPerMin": 0, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": -1, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": 1.5, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": 30.0, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": "abc", "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": "30", "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": 10**12, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": 100_001, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": True, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": None, "callsEnabled": True}, "callRateTokensPerMin"),
    ({"callsEnabled": True}, "callRateTokensPerMin"),
    ({"callRateTokensPerMin": 30, "callsEnabled": "yes"}, "callsEnabled"),
    ({"callRateTokensPerMin": 30, "callsEnabled": 1}, "callsEnabled"),
    ({"callRateTokensPerMin": 30, "callsEnabled": None}, "callsEnabled"),
    ({"callRateTokensPerMin": 30}, "callsEnabled"),
    ({}, "callRateTokensPerMin"),
])
def test_bad_settings_are_422_naming_the_field_and_change_nothing(client, creator_open, body, field):
    creator, headers = creator_open(60, True)
    assert_error(post_settings(client, headers, body), 422, field=field)
    assert settings_of(creator.id) == (60, True)


def test_both_bad_settings_fields_are_listed(client, creator_open):
    creator, headers = creator_open(60, True)
    err = assert_error(post_settings(client, headers, {"callRateTokensPerMin": 0, "callsEnabled": "no"}), 422)
    assert set(err["errors"]) == {"callRateTokensPerMin", "callsEnabled"}
    assert settings_of(creator.id) == (60, True)


def test_a_fan_cannot_set_a_call_rate_403(client, make_fan, api_headers):
    fan = make_fan()
    assert_error(post_settings(client, api_headers(fan), {"callRateTokensPerMin": 60, "callsEnabled": True}),
                 403, "not_a_creator")
    assert settings_of(fan.id) == (None, False)


@pytest.mark.parametrize("data", BAD_JSON)
def test_settings_with_a_non_object_body_is_400(client, creator_open, data):
    creator, headers = creator_open(60, True)
    resp = client.post("/api/creator/settings", data=data, content_type="application/json", headers=headers)
    assert_error(resp, 400)
    assert settings_of(creator.id) == (60, True)


# ---- POST /api/calls/init ------------------------------------------------------------------------------


def test_a_fan_requests_a_call_201_requested_and_nothing_is_charged(client, creator_open, make_fan, api_headers):
    creator, _ = creator_open(60)
    fan = make_fan(balance=1000)
    resp = init(client, api_headers(fan), {"creatorId": creator.id})
    call = ok(resp, 201)["call"]
    assert {"id", "channel", "status", "rateTokensPerMin"} <= set(call)
    assert isinstance(call["id"], int) and isinstance(call["channel"], str) and len(call["channel"]) >= 12
    assert (call["status"], call["rateTokensPerMin"]) == ("requested", 60)
    assert (call["fanId"], call["creatorId"], call["blocksCharged"], call["totalChargedTokens"]) == (
        fan.id, creator.id, 0, 0)
    assert "endReason" not in call
    row = fresh_call(call["id"])
    assert (row.fan_id, row.creator_id, row.rate, row.block_seconds, row.status, row.channel) == (
        fan.id, creator.id, 60, 30, "requested", call["channel"])
    assert wallet(fan.id) == 1000
    assert events(call["id"]) == []


def test_a_matching_rate_confirmation_is_accepted(client, creator_open, make_fan, api_headers):
    creator, _ = creator_open(25)
    call = ok(init(client, api_headers(make_fan(balance=100)), {"creatorId": creator.id,
                                                                 "rate_tokens_per_min": 25}), 201)["call"]
    assert call["rateTokensPerMin"] == 25 and call["status"] == "requested"


def test_a_rate_confirmation_that_differs_is_409_rate_changed(client, creator_open, make_fan, api_headers):
    creator, creator_headers = creator_open(60)
    fan = make_fan(balance=1000)
    headers = api_headers(fan)
    err = assert_error(init(client, headers, {"creatorId": creator.id, "rate_tokens_per_min": 50}), 409,
                       "rate_changed")
    assert err["rate"] == 60
    # The creator raised the price between the page load and the click.
    ok(post_settings(client, creator_headers, {"callRateTokensPerMin": 90, "callsEnabled": True}))
    err = assert_error(init(client, headers, {"creatorId": creator.id, "rate_tokens_per_min": 60}), 409,
                       "rate_changed")
    assert err["rate"] == 90
    assert calls_of(fan.id) == 0
    call = ok(init(client, headers, {"creatorId": creator.id, "rate_tokens_per_min": 90}), 201)["call"]
    assert call["rateTokensPerMin"] == 90


@pytest.mark.parametrize("confirmation", ["60", 60.0, True, [60]])
def test_a_rate_confirmation_that_is_not_an_integer_is_422(client, creator_open, make_fan, api_headers,
                                                          confirmation):
    creator, _ = creator_open(60)
    fan = make_fan(balance=1000)
    assert_error(init(client, api_headers(fan), {"creatorId": creator.id, "rate_tokens_per_min": confirmation}),
                 422, field="rate_tokens_per_min")
    assert calls_of(fan.id) == 0


def test_calls_disabled_is_409(client, creator_open, make_creator, make_fan, api_headers):
    closed, _ = creator_open(60, enabled=False)
    never_configured = make_creator()
    fan = make_fan(balance=1000)
    for creator in (closed, never_configured):
        assert_error(init(client, api_headers(fan), {"creatorId": creator.id}), 409, "calls_disabled")
    assert calls_of(fan.id) == 0


def test_calling_yourself_is_422(client, creator_open):
    creator, headers = creator_open(60)
    from app.wallet.service import purchase_tokens
    purchase_tokens(db.session.get(User, creator.id), 1000, f"seed-self-call-{creator.id}")
    assert_error(init(client, headers, {"creatorId": creator.id}), 422, "self_call", field="creatorId")
    assert calls_of(creator.id) == 0


def test_calling_a_fan_is_422_and_an_unknown_creator_404(client, make_fan, api_headers):
    fan, other_fan = make_fan(balance=1000), make_fan()
    headers = api_headers(fan)
    assert_error(init(client, headers, {"creatorId": other_fan.id}), 422, "not_a_creator", field="creatorId")
    unknown = db.session.scalar(text("SELECT coalesce(max(id), 0) + 1000 FROM users"))
    assert_error(init(client, headers, {"creatorId": unknown}), 404, "creator_not_found")
    assert calls_of(fan.id) == 0


@pytest.mark.parametrize("creator_id", ["abc", None, True, 1.5, -1, 0, 2**63, [1], {"id": 1}])
def test_a_bad_creator_id_is_422(client, make_fan, api_headers, creator_id):
    fan = make_fan(balance=1000)
    assert_error(init(client, api_headers(fan), {"creatorId": creator_id}), 422, field="creatorId")
    assert_error(init(client, api_headers(fan), {}), 422, field="creatorId")
    assert calls_of(fan.id) == 0


@pytest.mark.parametrize("rate,balance,required", [(60, 59, 1), (60, 0, 60), (25, 24, 1), (25, 10, 15),
                                                   (1, 0, 1)])
def test_less_than_two_blocks_of_balance_is_402_with_the_shortfall(client, creator_open, make_fan, api_headers,
                                                                   rate, balance, required):
    creator, _ = creator_open(rate)
    fan = make_fan(balance=balance)
    err = assert_error(init(client, api_headers(fan), {"creatorId": creator.id}), 402, "insufficient_funds")
    assert err["required"] == required
    assert calls_of(fan.id) == 0 and wallet(fan.id) == balance


@pytest.mark.parametrize("rate,balance", [(60, 60), (25, 25), (1, 1)])
def test_exactly_two_blocks_of_balance_is_enough(client, creator_open, make_fan, api_headers, rate, balance):
    creator, _ = creator_open(rate)
    fan = make_fan(balance=balance)
    ok(init(client, api_headers(fan), {"creatorId": creator.id}), 201)


def test_a_second_open_call_is_409_until_the_first_is_over(client, clock, creator_open, make_fan, api_headers):
    first, first_headers = creator_open(60)
    second, _ = creator_open(60)
    fan = make_fan(balance=1000)
    headers = api_headers(fan)
    call_id = ok(init(client, headers, {"creatorId": first.id}), 201)["call"]["id"]
    for creator in (first, second):  # requested
        err = assert_error(init(client, headers, {"creatorId": creator.id}), 409, "call_in_progress")
        assert err["callId"] == call_id
    ok(client.post(f"/api/calls/{call_id}/accept", headers=first_headers))
    assert_error(init(client, headers, {"creatorId": second.id}), 409, "call_in_progress")  # active
    ok(client.post(f"/api/billing/{call_id}/pause", headers=headers))
    assert_error(init(client, headers, {"creatorId": second.id}), 409, "call_in_progress")  # paused
    assert calls_of(fan.id) == 1
    ok(client.post(f"/api/calls/{call_id}/end", headers=headers))
    ok(init(client, headers, {"creatorId": second.id}), 201)
    assert calls_of(fan.id) == 2


def test_ten_concurrent_requests_from_one_fan_open_one_call(app, creator_open, make_fan, api_headers):
    """A double-clicked (or retried) request must not leave a fan with two open calls.
    Five rounds, each a fresh fan sending ten requests at the same instant."""
    creator, _ = creator_open(60)
    rounds = []
    for _ in range(5):
        fan = make_fan(balance=1000)
        headers = api_headers(fan)

        def request_call(i, headers=headers):
            resp = fresh_client(app).post("/api/calls/init", json={"creatorId": creator.id}, headers=headers)
            return resp.status_code, resp.get_json()

        results = run_together(app, 10, request_call)
        open_calls = db.session.scalar(text(
            "SELECT count(*) FROM calls WHERE fan_id = :f AND status IN ('requested', 'active', 'paused')"),
            {"f": fan.id})
        rounds.append((open_calls, sorted(status for status, _ in results)))
        assert all(body["code"] == "call_in_progress" for status, body in results if status == 409)
    assert rounds == [(1, [201] + [409] * 9)] * 5, rounds


@pytest.mark.parametrize("data", BAD_JSON)
def test_init_with_a_non_object_body_is_400(client, make_fan, api_headers, data):
    fan = make_fan(balance=1000)
    resp = client.post("/api/calls/init", data=data, content_type="application/json", headers=api_headers(fan))
    assert_error(resp, 400)
    assert calls_of(fan.id) == 0


# ---- accept / decline / end -------------------------------------------------------------------------


def test_the_creator_accepts_and_block_0_is_charged(client, clock, requested):
    fan_headers, creator_headers, call_id, fan_id, creator_id = requested(rate=25)
    call = ok(client.post(f"/api/calls/{call_id}/accept", headers=creator_headers))["call"]
    assert (call["id"], call["status"], call["blocksCharged"], call["totalChargedTokens"]) == (call_id, "active",
                                                                                             1, 13)
    assert "endReason" not in call
    assert wallet(fan_id) == 987
    assert ledger.balance_of(ledger.account_for(creator_id, "earnings")) == 10
    assert ok(client.get(f"/api/calls/{call_id}", headers=fan_headers))["call"] == call


def test_only_the_creator_accepts_403(client, clock, requested, outsider):
    fan_headers, _, call_id, fan_id, _ = requested()
    assert_error(client.post(f"/api/calls/{call_id}/accept", headers=fan_headers), 403, "not_the_creator")
    for headers in outsider:
        assert_error(client.post(f"/api/calls/{call_id}/accept", headers=headers), 403, "not_a_participant")
    assert fresh_call(call_id).status == "requested" and wallet(fan_id) == 1000


def test_accepting_when_the_fan_can_no_longer_pay_block_0_ends_the_call_insufficient_funds(client, clock,
                                                                                             requested):
    """The fan spent their tokens elsewhere between the request and the answer: the
    call ends at once (insufficient_funds), nothing is charged, never a 500."""
    from app.tips.service import send_tip
    fan_headers, creator_headers, call_id, fan_id, creator_id = requested(rate=60, balance=60)
    send_tip(db.session.get(User, fan_id), creator_id, 45, "", None, f"drain-{call_id}")
    assert wallet(fan_id) == 15
    resp = client.post(f"/api/calls/{call_id}/accept", headers=creator_headers)
    call = ok(resp)["call"]
    assert (call["status"], call["endReason"], call["blocksCharged"], call["totalChargedTokens"]) == (
        "ended", "insufficient_funds", 0, 0)
    assert wallet(fan_id) == 15
    assert [(t, k, a, r) for t, k, a, r in events(call_id)] == [
        ("insufficient_funds", 0, 15, None), ("ended", None, None, "insufficient_funds")]
    assert ledger.verify() == []


def test_accepting_twice_is_409_and_charges_once(client, clock, requested):
    _, creator_headers, call_id, fan_id, _ = requested()
    ok(client.post(f"/api/calls/{call_id}/accept", headers=creator_headers))
    assert_error(client.post(f"/api/calls/{call_id}/accept", headers=creator_headers), 409, "invalid_call_status")
    assert wallet(fan_id) == 970 and fresh_call(call_id).blocks_charged == 1


def test_the_creator_declines_then_the_call_cannot_be_accepted(client, clock, requested):
    fan_headers, creator_headers, call_id, fan_id, _ = requested()
    assert_error(client.post(f"/api/calls/{call_id}/decline", headers=fan_headers), 403, "not_the_creator")
    call = ok(client.post(f"/api/calls/{call_id}/decline", headers=creator_headers))["call"]
    assert (call["status"], call["blocksCharged"], call["totalChargedTokens"]) == ("declined", 0, 0)
    assert "endReason" not in call
    assert_error(client.post(f"/api/calls/{call_id}/accept", headers=creator_headers), 409, "call_over")
    assert_error(client.post(f"/api/calls/{call_id}/decline", headers=creator_headers), 409, "call_over")
    assert wallet(fan_id) == 1000 and events(call_id) == []


def test_declining_an_active_call_is_409(client, clock, active):
    _, creator_headers, call_id, _, _ = active()
    assert_error(client.post(f"/api/calls/{call_id}/decline", headers=creator_headers), 409, "invalid_call_status")
    assert fresh_call(call_id).status == "active"


@pytest.mark.parametrize("who,reason", [("fan", "ended_by_fan"), ("creator", "ended_by_creator")])
def test_either_party_ends_an_active_call_and_billing_stops(client, clock, active, who, reason):
    fan_headers, creator_headers, call_id, fan_id, _ = active()
    headers = fan_headers if who == "fan" else creator_headers
    clock.advance(40)
    call = ok(client.post(f"/api/calls/{call_id}/end", headers=headers))["call"]
    assert (call["status"], call["endReason"], call["blocksCharged"], call["totalChargedTokens"]) == (
        "ended", reason, 2, 60)
    assert_error(client.post(f"/api/calls/{call_id}/end", headers=headers), 409, "call_over")
    clock.advance(minutes=10)
    service.meter()
    assert fresh_call(call_id).blocks_charged == 2 and wallet(fan_id) == 940
    assert events(call_id)[-1] == ("ended", None, None, reason)
    assert ok(client.get(f"/api/calls/{call_id}", headers=fan_headers))["call"]["endReason"] == reason


def test_a_fan_withdraws_a_request_and_is_charged_nothing(client, clock, requested):
    fan_headers, creator_headers, call_id, fan_id, _ = requested()
    call = ok(client.post(f"/api/calls/{call_id}/end", headers=fan_headers))["call"]
    assert (call["status"], call["endReason"], call["blocksCharged"]) == ("ended", "ended_by_fan", 0)
    assert_error(client.post(f"/api/calls/{call_id}/accept", headers=creator_headers), 409, "call_over")
    assert wallet(fan_id) == 1000


def test_an_outsider_cannot_end_or_decline_403(client, clock, active, outsider):
    _, _, call_id, _, _ = active()
    for headers in outsider:
        for action in ("end", "decline"):
            assert_error(client.post(f"/api/calls/{call_id}/{action}", headers=headers), 403, "not_a_participant")
    assert fresh_call(call_id).status == "active"


# ---- GET /api/calls/<id> --------------------------------------------------------------------------------


def test_get_call_is_for_its_two_participants_only(client, new_client, clock, active, outsider):
    fan_headers, creator_headers, call_id, fan_id, creator_id = active(rate=60)
    for headers in (fan_headers, creator_headers):
        call = ok(client.get(f"/api/calls/{call_id}", headers=headers))["call"]
        assert (call["id"], call["status"], call["rateTokensPerMin"], call["fanId"], call["creatorId"],
                call["blocksCharged"], call["totalChargedTokens"]) == (call_id, "active", 60, fan_id, creator_id,
                                                                       1, 30)
    for headers in outsider:
        err = assert_error(client.get(f"/api/calls/{call_id}", headers=headers), 403, "not_a_participant")
        assert "channel" not in err
    assert_error(new_client().get(f"/api/calls/{call_id}"), 401)


@pytest.mark.parametrize("path", ["/api/calls/{unknown}", "/api/calls/9223372036854775807",
                                  "/api/billing/calls/{unknown}/history",
                                  "/api/billing/calls/9223372036854775807/history"])
def test_an_unknown_call_is_404(client, make_fan, api_headers, path):
    unknown = db.session.scalar(text("SELECT coalesce(max(id), 0) + 1000 FROM calls"))
    assert_error(client.get(path.format(unknown=unknown), headers=api_headers(make_fan())), 404, "call_not_found")


@pytest.mark.parametrize("path", ["/api/calls/{id}", "/api/billing/calls/{id}/history"])
@pytest.mark.parametrize("call_id", ["9223372036854775808", "99999999999999999999", "\u0663", "\uff11"])
def test_a_call_id_beyond_bigint_or_in_non_ascii_digits_is_404_before_any_lookup(client, make_fan, api_headers,
                                                                                 path, call_id):
    """No such URL: the `<int:>` converter takes ASCII digits up to BIGINT's maximum."""
    assert_error(client.get(path.format(id=call_id), headers=api_headers(make_fan())), 404, "not_found")


@pytest.mark.parametrize("action", ["calls/{id}/accept", "calls/{id}/decline", "calls/{id}/end",
                                    "billing/{id}/pause", "billing/{id}/active", "billing/{id}/stop"])
def test_changing_an_unknown_call_is_404(client, make_creator, api_headers, action):
    unknown = db.session.scalar(text("SELECT coalesce(max(id), 0) + 1000 FROM calls"))
    headers = api_headers(make_creator())
    for call_id in (unknown, 2**63 - 1):
        assert_error(client.post("/api/" + action.format(id=call_id), headers=headers), 404, "call_not_found")
    for call_id in (2**63, 99999999999999999999):  # no such URL (see above)
        assert_error(client.post("/api/" + action.format(id=call_id), headers=headers), 404, "not_found")


# ---- /api/billing/<id>/pause | active | stop ---------------------------------------------------------------


def test_both_parties_pause_and_resume(client, clock, active):
    fan_headers, creator_headers, call_id, _, _ = active()
    clock.advance(10)
    call = ok(client.post(f"/api/billing/{call_id}/pause", headers=fan_headers))["call"]
    assert call["status"] == "paused"
    assert fresh_call(call_id).paused_by == "fan"
    clock.advance(minutes=5)
    call = ok(client.post(f"/api/billing/{call_id}/active", headers=creator_headers))["call"]
    assert call["status"] == "active" and call["blocksCharged"] == 1
    clock.advance(5)
    ok(client.post(f"/api/billing/{call_id}/pause", headers=creator_headers))
    assert fresh_call(call_id).paused_by == "creator"
    call = ok(client.post(f"/api/billing/{call_id}/active", headers=fan_headers))["call"]
    assert call["status"] == "active"
    assert fresh_call(call_id).active_ms == 15_000
    # Pausing a paused call or resuming an active one is harmless.
    ok(client.post(f"/api/billing/{call_id}/active", headers=fan_headers))
    assert [(t, r) for t, _, _, r in events(call_id)] == [
        ("block_charged", None), ("paused", "fan"), ("resumed", "creator"), ("paused", "creator"),
        ("resumed", "fan")]


def test_stop_ends_the_call_with_billing_stopped(client, clock, active):
    fan_headers, creator_headers, call_id, fan_id, _ = active()
    clock.advance(31)
    call = ok(client.post(f"/api/billing/{call_id}/stop", headers=fan_headers))["call"]
    assert (call["status"], call["endReason"], call["blocksCharged"], call["totalChargedTokens"]) == (
        "ended", "billing_stopped", 2, 60)
    assert [(t, r) for t, _, _, r in events(call_id)][-2:] == [("stopped", "fan"), ("ended", "billing_stopped")]
    for action in ("pause", "active", "stop"):
        assert_error(client.post(f"/api/billing/{call_id}/{action}", headers=creator_headers), 409, "call_over")
    clock.advance(minutes=5)
    service.meter()
    assert wallet(fan_id) == 940


@pytest.mark.parametrize("action", ["pause", "active", "stop"])
def test_billing_actions_on_a_requested_call_are_409(client, clock, requested, action):
    fan_headers, _, call_id, fan_id, _ = requested()
    assert_error(client.post(f"/api/billing/{call_id}/{action}", headers=fan_headers), 409, "invalid_call_status")
    assert fresh_call(call_id).status == "requested" and events(call_id) == [] and wallet(fan_id) == 1000


@pytest.mark.parametrize("action", ["pause", "active", "stop"])
def test_billing_actions_are_for_participants_only_403(client, clock, active, outsider, action):
    _, _, call_id, _, _ = active()
    for headers in outsider:
        assert_error(client.post(f"/api/billing/{call_id}/{action}", headers=headers), 403, "not_a_participant")
    call = fresh_call(call_id)
    assert (call.status, call.blocks_charged) == ("active", 1) and event_types(call_id) == ["block_charged"]


# ---- GET /api/billing/calls/<id>/history ---------------------------------------------------------------------


def test_history_lists_every_event_with_block_receipts_split_80_20(client, clock, active, outsider, new_client):
    fan_headers, creator_headers, call_id, _, _ = active(rate=25)
    clock.advance(31)
    service.meter()
    ok(client.post(f"/api/billing/{call_id}/pause", headers=creator_headers))
    ok(client.post(f"/api/billing/{call_id}/active", headers=fan_headers))
    clock.advance(30)
    ok(client.post(f"/api/calls/{call_id}/end", headers=fan_headers))

    history = ok(client.get(f"/api/billing/calls/{call_id}/history", headers=fan_headers))["events"]
    assert ok(client.get(f"/api/billing/calls/{call_id}/history", headers=creator_headers))["events"] == history
    assert [e["type"] for e in history] == ["block_charged", "block_charged", "paused", "resumed", "block_charged",
                                            "ended"]
    blocks = [e for e in history if e["type"] == "block_charged"]
    assert [(e["blockIndex"], e["amountTokens"]) for e in blocks] == [(0, 13), (1, 12), (2, 13)]
    for e in blocks:
        assert set(e) == {"type", "blockIndex", "amountTokens", "creatorShare", "platformShare", "createdAt"}
        assert e["creatorShare"] + e["platformShare"] == e["amountTokens"]
        assert (e["creatorShare"], e["platformShare"]) == ledger.split(e["amountTokens"])
    assert [(e["creatorShare"], e["platformShare"]) for e in blocks] == [(10, 3), (9, 3), (10, 3)]
    assert history[2] == {"type": "paused", "reason": "creator", "createdAt": history[2]["createdAt"]}
    assert history[3] == {"type": "resumed", "reason": "fan", "createdAt": history[3]["createdAt"]}
    assert history[5] == {"type": "ended", "reason": "ended_by_fan", "createdAt": history[5]["createdAt"]}
    for e in history:
        assert datetime.fromisoformat(e["createdAt"]).tzinfo is not None

    for headers in outsider:
        assert_error(client.get(f"/api/billing/calls/{call_id}/history", headers=headers), 403, "not_a_participant")
    assert_error(new_client().get(f"/api/billing/calls/{call_id}/history"), 401)


def test_history_of_a_call_that_ran_dry_shows_the_warning_and_the_reason(client, clock, active):
    fan_headers, _, call_id, _, _ = active(rate=60, balance=90)  # blocks 0..2
    clock.advance(30)
    service.meter()  # block 1: 30 left, less than two blocks
    history = ok(client.get(f"/api/billing/calls/{call_id}/history", headers=fan_headers))["events"]
    assert [e["type"] for e in history] == ["block_charged", "block_charged", "low_balance"]
    assert history[2]["blockIndex"] == 2
    clock.advance(60)
    service.meter()  # block 2 takes the last 30, block 3 can't be paid: the call ends (no further warning)
    history = ok(client.get(f"/api/billing/calls/{call_id}/history", headers=fan_headers))["events"]
    assert [e["type"] for e in history][3:] == ["block_charged", "insufficient_funds", "ended"]
    assert history[-2]["blockIndex"] == 3 and history[-1]["reason"] == "insufficient_funds"
    call = ok(client.get(f"/api/calls/{call_id}", headers=fan_headers))["call"]
    assert (call["status"], call["endReason"], call["blocksCharged"], call["totalChargedTokens"]) == (
        "ended", "insufficient_funds", 3, 90)


# ---- POST /api/billing/meter ------------------------------------------------------------------------------------


@pytest.fixture()
def hook(make_app, clock):
    """A client of an app with BILLING_WEBHOOK_SECRET set, on the same database and clock."""
    hook_app = make_app(BILLING_WEBHOOK_SECRET=SECRET)
    install_clock(hook_app, clock)
    return fresh_client(hook_app)


def test_the_meter_webhook_needs_the_secret(hook, clock, active):
    _, _, call_id, fan_id, _ = active(rate=60)
    clock.advance(65)  # blocks 1 and 2 due
    assert_error(hook.post("/api/billing/meter"), 401, "missing_billing_secret")
    assert_error(hook.post("/api/billing/meter", headers={"X-Billing-Secret": ""}), 401)
    for wrong in ("wrong", SECRET[:-1], SECRET + "x", SECRET.upper(), "é" + SECRET):
        assert_error(hook.post("/api/billing/meter", headers={"X-Billing-Secret": wrong}), 403, "bad_billing_secret")
    assert fresh_call(call_id).blocks_charged == 1 and wallet(fan_id) == 970

    resp = hook.post("/api/billing/meter", headers={"X-Billing-Secret": SECRET})
    assert ok(resp) == {"metered": 1, "blocksCharged": 2, "callsEnded": 0}
    assert fresh_call(call_id).blocks_charged == 3 and wallet(fan_id) == 910
    assert ok(hook.post("/api/billing/meter", headers={"X-Billing-Secret": SECRET})) == {
        "metered": 1, "blocksCharged": 0, "callsEnded": 0}


def test_the_meter_webhook_needs_no_login_but_a_user_token_is_not_the_secret(hook, make_fan, api_headers):
    headers = api_headers(make_fan())
    assert_error(hook.post("/api/billing/meter", headers=headers), 401, "missing_billing_secret")
    ok(hook.post("/api/billing/meter", headers={**headers, "X-Billing-Secret": SECRET}))


def test_with_no_secret_configured_the_webhook_refuses_everyone(client, app, clock, active):
    assert app.config["BILLING_WEBHOOK_SECRET"] == ""
    _, _, call_id, _, _ = active()
    clock.advance(60)
    for given in ("", "anything", "wrong"):
        resp = client.post("/api/billing/meter", headers={"X-Billing-Secret": given} if given else {})
        assert_error(resp, 401 if not given else 403)
    assert fresh_call(call_id).blocks_charged == 1


# ---- anonymous and malformed requests ---------------------------------------------------------------------------


ROUTES = [("POST", "/api/creator/settings"), ("POST", "/api/calls/init"), ("GET", "/api/calls/{id}"),
          ("POST", "/api/calls/{id}/accept"), ("POST", "/api/calls/{id}/decline"), ("POST", "/api/calls/{id}/end"),
          ("POST", "/api/billing/{id}/pause"), ("POST", "/api/billing/{id}/active"),
          ("POST", "/api/billing/{id}/stop"), ("GET", "/api/billing/calls/{id}/history")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_anonymous_is_401_everywhere(new_client, clock, requested, method, path):
    _, _, call_id, fan_id, _ = requested()
    resp = new_client().open(path.format(id=call_id), method=method, json={"creatorId": 1})
    assert_error(resp, 401)
    call = fresh_call(call_id)
    assert call.status == "requested" and wallet(fan_id) == 1000


@pytest.mark.parametrize("method,path", ROUTES)
def test_a_revoked_or_bogus_token_is_401(client, clock, requested, method, path):
    _, _, call_id, _, _ = requested()
    resp = client.open(path.format(id=call_id), method=method, json={},
                       headers={"Authorization": "Bearer not-a-real-token"})
    assert_error(resp, 401, "invalid_token")


@pytest.mark.parametrize("action", ["calls/{id}/accept", "calls/{id}/decline", "calls/{id}/end",
                                    "billing/{id}/pause", "billing/{id}/active", "billing/{id}/stop"])
@pytest.mark.parametrize("data", ["nope", "[]", "{"])
def test_garbage_bodies_on_bodyless_actions_never_500(client, clock, requested, action, data):
    _, creator_headers, call_id, _, _ = requested()
    resp = client.post("/api/" + action.format(id=call_id), data=data, content_type="application/json",
                       headers=creator_headers)
    assert resp.status_code < 500 and resp.is_json, resp.get_data(as_text=True)


def test_cookie_sessions_need_csrf_on_call_actions(client, login, clock, creator_open, make_fan):
    creator, _ = creator_open(60)
    call_id = service.init_call(make_fan(balance=1000), creator.id).id
    csrf = login(creator)
    assert_error(client.post(f"/api/calls/{call_id}/accept"), 400, "csrf_failed")
    assert fresh_call(call_id).status == "requested"
    call = ok(client.post(f"/api/calls/{call_id}/accept", headers={"X-CSRFToken": csrf}))["call"]
    assert call["status"] == "active"
