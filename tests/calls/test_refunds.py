"""Refunds of call blocks (DESIGN.md §11; app/calls/refunds.py): block 0 back, once,
when a call's media never connected during its first block; operators refund any
block; both parties see refunds on their receipts.

Real PostgreSQL, Redis and threads; only the clock is injected. Every test that
moves money ends with `ledger.verify() == []`.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from app import ledger
from app.calls import cron, refunds, service
from app.calls.models import BillingEvent
from app.errors import InvalidValue
from app.extensions import db
from app.payouts.models import Payout
from app.realtime.bus import user_channel
from app.redis_client import get_redis
from tests.calls.helpers import earnings, events, fresh_call, wallet
from tests.conftest import csrf_from
from tests.helpers import assert_error, run_together
from worker import cron_jobs

pytestmark = pytest.mark.usefixtures("no_open_calls", "swept")

RATE = 60  # tokens/min: 30 a 30-second block, split 24 (creator) / 6 (platform)


# ---- helpers ---------------------------------------------------------------------------------------


@pytest.fixture()
def swept(app, no_open_calls):
    """Calls other tests left ended without media are refunded before this test starts, so
    a sweep here handles only this test's calls (and the first batch isn't theirs)."""
    with app.app_context():
        while refunds.refund_unconnected_calls():
            pass
        db.session.remove()


@pytest.fixture()
def operator(make_fan):
    user = make_fan(name=f"Ops {uuid.uuid4().hex[:4]}")
    user.is_operator = True
    db.session.commit()
    return user


def sweep() -> list[int]:
    return refunds.refund_unconnected_calls()


def refund_transfers(call_id: int) -> list[tuple]:
    """(key, kind, metadata) of the call's refund transfers, in block order."""
    db.session.rollback()
    return [tuple(r) for r in db.session.execute(text(
        "SELECT idempotency_key, kind, metadata FROM ledger_transfers WHERE idempotency_key LIKE :k ORDER BY id"),
        {"k": f"call:{call_id}:refund:block:%"})]


def refund_legs(call_id: int, k: int) -> dict[str, int]:
    """Account kind → amount of block k's refund transfer."""
    return {kind: amount for kind, amount in db.session.execute(text(
        "SELECT a.kind, e.amount FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "JOIN ledger_transfers t ON t.id = e.transfer_id WHERE t.idempotency_key = :k"),
        {"k": f"call:{call_id}:refund:block:{k}"})}


def refunded_events(call_id: int) -> list[tuple]:
    return [e for e in events(call_id) if e[0] == "block_refunded"]


def end(call_id: int, user) -> None:
    service.end(user, call_id)


def no_media_call(make_call, **kw):
    """A call accepted with neither page's media connected (block 0 charged: 30 tokens)."""
    return make_call(rate=RATE, present=False, **kw)


def pay_out(creator_id: int) -> None:
    """Everything in the creator's earnings leaves as a paid payout (as app/payouts will do:
    earnings → in transit → paid), so refunds can no longer take their share back."""
    amount = earnings(creator_id)
    account = ledger.account_for(creator_id, "earnings")
    transit, paid = ledger.system_account("payouts_in_transit"), ledger.system_account("payouts_paid")
    key = f"payout:test-{uuid.uuid4().hex}"
    moved = ledger.transfer(ledger.TransferKind.PAYOUT, key, [ledger.Leg(account, -amount),
                                                              ledger.Leg(transit, amount)])
    ledger.transfer(ledger.TransferKind.PAYOUT_PAID, key + ":paid", [ledger.Leg(transit, -amount),
                                                                     ledger.Leg(paid, amount)])
    db.session.add(Payout(user_id=creator_id, amount_tokens=amount, amount_cents=amount, currency="usd",
                          status="paid", stripe_transfer_id=key, transfer_id=moved.transfer_id,
                          paid_at=db.func.now()))
    db.session.commit()


def take_back(fan_id: int, tokens: int) -> None:
    """A card refund takes `tokens` of the fan's first purchase back (as the charge.refunded
    webhook does): the wallet first, the rest becomes the fan's debt."""
    purchase_id = db.session.scalar(text("SELECT id FROM purchases WHERE user_id = :u ORDER BY id LIMIT 1"),
                                    {"u": fan_id})
    holder = ledger.lock_holder(fan_id)
    legs = ledger.holder_take_back(holder, tokens) + [ledger.Leg(ledger.system_account("token_sales"), tokens)]
    ledger.transfer(ledger.TransferKind.PURCHASE_REVERSAL, f"purchase:{purchase_id}:refund:{tokens}", legs)
    db.session.execute(text("UPDATE purchases SET status = 'refunded', refunded_tokens = :n WHERE id = :p"),
                       {"n": tokens, "p": purchase_id})
    db.session.commit()


def log_in(browser, user) -> str:
    """Log `user` in on this test client; its CSRF token for forms."""
    resp = browser.post("/login", data={"email": user.email, "password": user.test_password,
                                        "csrf_token": csrf_from(browser, "/login")})
    assert resp.status_code == 303
    return csrf_from(browser, "/wallet")


def post_refund(client, headers, call_id, body=None, key=None):
    return client.post(f"/api/platform/calls/{call_id}/refund", json={} if body is None else body,
                       headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())})


def ok(resp, status=200) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


# ---- the automatic rule ------------------------------------------------------------------------------


def test_media_never_connected_gives_block_0_back_once_when_the_call_ends(clock, make_call):
    fan, creator, call_id = no_media_call(make_call)
    assert (wallet(fan.id), earnings(creator.id)) == (970, 24)
    clock.advance(10)
    assert call_id not in sweep()  # still in its first block: nothing yet
    end(call_id, fan)
    assert fresh_call(call_id).media_connected_at is None

    assert call_id in sweep()
    assert call_id not in sweep()  # the second run finds nothing to do
    assert (wallet(fan.id), earnings(creator.id)) == (1000, 0)
    assert refunded_events(call_id) == [("block_refunded", 0, 30, "media_never_connected")]
    [(key, kind, metadata)] = refund_transfers(call_id)
    assert (key, kind) == (f"call:{call_id}:refund:block:0", "call_refund")
    assert metadata == {"callId": call_id, "blockIndex": 0, "reason": "media_never_connected",
                        "creatorId": creator.id, "creatorName": creator.display_name}
    assert refund_legs(call_id, 0) == {"wallet": 30, "earnings": -24, "platform_fees": -6}
    event = db.session.scalars(db.select(BillingEvent).where(BillingEvent.call_id == call_id,
                                                             BillingEvent.type == "block_refunded")).one()
    assert (event.creator_share, event.platform_share) == (24, 6)
    assert ledger.verify() == []
    from app.wallet import service as wallet_service
    assert wallet_service.history(fan).items[0].reason == (
        f"Refund: call with {creator.display_name}, block 1 (media never connected)")


def test_concurrent_sweeps_in_real_threads_refund_block_0_exactly_once(app, clock, make_call, operator):
    """Six sweeps and two operators asking for every block, all released at once."""
    scenes = [no_media_call(make_call) for _ in range(3)]
    for fan, _creator, call_id in scenes:
        end(call_id, fan)
    ids = {s.call_id for s in scenes}

    def work(i) -> set[int]:
        """The calls this runner refunded block 0 of."""
        if i in (3, 7):
            call_id = scenes[i % 3].call_id
            return {call_id} if refunds.refund_blocks(operator, call_id, None, f"k-{uuid.uuid4()}").refunded else set()
        return set(refunds.refund_unconnected_calls()) & ids
    results = run_together(app, 8, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    for fan, creator, call_id in scenes:
        assert sum(call_id in r for r in results) == 1  # exactly one runner refunded it
        [(type_, block, amount, _reason)] = refunded_events(call_id)
        assert (type_, block, amount) == ("block_refunded", 0, 30)
        assert len(refund_transfers(call_id)) == 1
        assert (wallet(fan.id), earnings(creator.id)) == (1000, 0)
    assert ledger.verify() == []


def test_media_connected_before_the_accept_means_no_refund(clock, make_call):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    assert fresh_call(call_id).media_connected_at == clock.now  # up as block 0 started
    clock.advance(45)
    service.meter()
    end(call_id, fan)
    assert call_id not in sweep()
    assert refund_transfers(call_id) == [] and refunded_events(call_id) == []
    assert wallet(fan.id) == 1000 - 60


def test_media_connected_during_the_first_block_means_no_refund(clock, make_call):
    fan, creator, call_id = no_media_call(make_call)
    clock.advance(12)
    service.presence_changed(call_id, "fan", True)
    assert fresh_call(call_id).media_connected_at is None  # one side is not a connection
    clock.advance(3)
    service.presence_changed(call_id, "creator", True)
    assert fresh_call(call_id).media_connected_at == clock.now
    service.presence_changed(call_id, "creator", False)
    clock.advance(5)
    end(call_id, fan)
    assert fresh_call(call_id).media_connected_at is not None  # never cleared
    assert call_id not in sweep()
    assert refunded_events(call_id) == []
    assert wallet(fan.id) == 970


def test_media_up_after_a_presence_pause_but_within_the_first_blocks_active_time_is_no_refund(clock, make_call):
    """The first block is 30 s of *billed* time: paused time (nobody's media up after the
    20 s grace) doesn't use it up, so media connecting at 45 s (20 s billed) was in time."""
    fan, creator, call_id = no_media_call(make_call)
    clock.advance(25)
    service.meter()  # the grace ran out at 20 s: paused for presence, 20 s billed
    assert (fresh_call(call_id).status, fresh_call(call_id).paused_by) == ("paused", "presence")
    clock.advance(20)
    service.presence_changed(call_id, "fan", True)
    service.presence_changed(call_id, "creator", True)
    call = fresh_call(call_id)
    assert call.status == "active" and call.media_connected_at == clock.now and call.blocks_charged == 1
    end(call_id, fan)
    assert call_id not in sweep()
    assert refunded_events(call_id) == []


def test_media_connected_only_after_the_first_block_gives_block_0_back_at_once(ctx, clock, make_call, monkeypatch):
    monkeypatch.setitem(ctx.config, "PRESENCE_GRACE_SECONDS", 120)  # billing runs on without media
    fan, creator, call_id = no_media_call(make_call)
    clock.advance(35)
    service.meter()
    assert fresh_call(call_id).blocks_charged == 2  # block 1 started: the first block is over
    service.presence_changed(call_id, "fan", True)
    service.presence_changed(call_id, "creator", True)  # no sweep ran: this change refunds
    call = fresh_call(call_id)
    assert call.media_connected_at == clock.now
    assert refunded_events(call_id) == [("block_refunded", 0, 30, "media_never_connected")]
    assert wallet(fan.id) == 1000 - 60 + 30
    end(call_id, fan)
    assert call_id not in sweep()
    assert len(refund_transfers(call_id)) == 1
    assert ledger.verify() == []


def test_an_open_call_billed_past_its_first_block_without_media_is_refunded_by_the_sweep(ctx, clock, make_call,
                                                                                          monkeypatch):
    monkeypatch.setitem(ctx.config, "PRESENCE_GRACE_SECONDS", 120)
    fan, creator, call_id = no_media_call(make_call)
    clock.advance(29)
    service.meter()
    assert call_id not in sweep()  # 29 s billed: the first block isn't over
    clock.advance(1)
    service.meter()
    assert call_id in sweep()  # block 1 started without media: no need to wait for the end
    assert fresh_call(call_id).status == "active"
    service.presence_changed(call_id, "fan", True)
    service.presence_changed(call_id, "creator", True)  # late media: already refunded, nothing more
    assert len(refund_transfers(call_id)) == 1
    assert wallet(fan.id) == 1000 - 60 + 30
    assert ledger.verify() == []



def test_a_call_ended_longer_ago_than_the_window_is_left_to_the_operator(clock, make_call, operator):
    fan, creator, call_id = no_media_call(make_call)
    end(call_id, fan)
    later = clock.now + refunds.AUTO_REFUND_WINDOW + timedelta(seconds=1)
    assert call_id not in refunds.refund_unconnected_calls(at=later)
    assert refund_transfers(call_id) == []
    assert refunds.refund_blocks(operator, call_id, None, f"k-{uuid.uuid4()}").refunded == [0]
    assert wallet(fan.id) == 1000


def test_a_block_that_moved_no_tokens_is_never_refunded(ctx, clock, make_call, operator, monkeypatch):
    """Rate 1: block 0 costs 1 token (all the platform's: the creator's share rounds to 0)
    and block 1 costs nothing. Refunding moves only non-zero legs; a free block is refused."""
    monkeypatch.setitem(ctx.config, "PRESENCE_GRACE_SECONDS", 120)
    fan, creator, call_id = make_call(rate=1, present=False)
    clock.advance(30)
    service.meter()
    assert [(e[0], e[1], e[2]) for e in events(call_id) if e[0] == "block_charged"] == [
        ("block_charged", 0, 1), ("block_charged", 1, 0)]
    with pytest.raises(InvalidValue) as refused:
        refunds.refund_blocks(operator, call_id, [1], f"k-{uuid.uuid4()}")
    assert refused.value.code == "invalid_block"
    end(call_id, fan)
    assert call_id in sweep()
    assert refund_legs(call_id, 0) == {"wallet": 1, "platform_fees": -1}
    assert refunds.refund_blocks(operator, call_id, None, f"k-{uuid.uuid4()}").refunded == []  # block 1: free
    assert ledger.verify() == []


def test_a_block_logged_as_free_is_not_refunded_by_the_sweep(clock, make_call):
    """A block logged with amount 0 (the schema allows it: a free block moves nothing) has
    nothing to give back, even when the call's media never connected."""
    fan, creator, call_id = no_media_call(make_call)
    db.session.execute(text("UPDATE billing_events SET amount = 0, creator_share = 0, platform_share = 0 "
                            "WHERE call_id = :c AND type = 'block_charged'"), {"c": call_id})
    db.session.commit()
    end(call_id, fan)
    assert call_id not in sweep()
    assert refund_transfers(call_id) == []


def test_the_sweep_is_a_cron_job_of_the_worker(ctx):
    assert (cron.refund_failed_calls, ctx.config["BILLING_TICK_SECONDS"]) in cron_jobs()
    assert cron.refund_failed_calls() == {"refunded": []}


# ---- operators -----------------------------------------------------------------------------------------


def test_an_operator_refunds_one_block_then_all_remaining_then_nothing_more(clock, make_call, operator,
                                                                            client, api_headers):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    clock.advance(60)
    service.meter()
    end(call_id, fan)
    assert (wallet(fan.id), earnings(creator.id)) == (910, 72)
    headers = api_headers(operator)

    body = ok(post_refund(client, headers, call_id, {"blocks": [1]}))
    assert body["refunded"] == [1] and body["call"]["id"] == call_id
    assert (wallet(fan.id), earnings(creator.id)) == (940, 48)
    assert refunded_events(call_id) == [("block_refunded", 1, 30, "operator")]

    assert ok(post_refund(client, headers, call_id))["refunded"] == [0, 2]  # omitted: all remaining
    assert (wallet(fan.id), earnings(creator.id)) == (1000, 0)
    assert ok(post_refund(client, headers, call_id))["refunded"] == []
    assert ok(post_refund(client, headers, call_id, {"blocks": [0, 1]}))["refunded"] == []
    assert len(refund_transfers(call_id)) == 3
    assert call_id not in sweep()  # media connected: and block 0 is refunded anyway
    assert ledger.verify() == []


def test_an_operators_retry_with_the_same_key_answers_the_first_result(clock, make_call, operator, client,
                                                                       api_headers):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    clock.advance(30)
    service.meter()
    headers = api_headers(operator)
    key = str(uuid.uuid4())
    first = ok(post_refund(client, headers, call_id, {"blocks": [0, 1]}, key=key))
    assert first["refunded"] == [0, 1]
    assert ok(post_refund(client, headers, call_id, {"blocks": [1, 0, 1]}, key=key))["refunded"] == [0, 1]
    assert_error(post_refund(client, headers, call_id, {"blocks": [0]}, key=key), 409, "idempotency_key_reused")
    assert len(refund_transfers(call_id)) == 2 and wallet(fan.id) == 1000
    assert ledger.verify() == []


def test_concurrent_operator_refunds_of_the_same_blocks_move_them_once(app, clock, make_call, operator):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    clock.advance(60)
    service.meter()
    results = run_together(app, 8, lambda i: refunds.refund_blocks(
        operator, call_id, None if i % 2 else [0, 1, 2], f"k-{uuid.uuid4()}").refunded)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(k for r in results for k in r) == [0, 1, 2]
    assert len(refund_transfers(call_id)) == 3
    assert (wallet(fan.id), earnings(creator.id)) == (1000, 0)
    assert ledger.verify() == []


def test_a_refund_the_creators_paid_out_earnings_cannot_cover_moves_nothing(clock, make_call, operator, client,
                                                                            api_headers):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    clock.advance(30)
    service.meter()
    end(call_id, fan)
    pay_out(creator.id)
    before = (wallet(fan.id), earnings(creator.id), len(refund_transfers(call_id)))
    body = assert_error(post_refund(client, api_headers(operator), call_id), 409, "refund_not_covered")
    assert "paid out" in body["error"]
    assert (wallet(fan.id), earnings(creator.id), len(refund_transfers(call_id))) == before
    assert refunded_events(call_id) == []
    # The automatic rule skips it too (logged), and tries nothing twice in one sweep.
    fan2, _creator, call2 = no_media_call(make_call, creator=creator)
    end(call2, fan2)
    pay_out(creator.id)
    assert call2 not in sweep()
    assert refund_transfers(call2) == [] and wallet(fan2.id) == 970
    assert ledger.verify() == []


def test_a_fan_in_debt_has_the_debt_repaid_first(clock, make_call, operator):
    """Blocks 0 and 1 (60 tokens) back to a fan owing 50: block 0 repays 30, block 1
    repays the last 20 and 10 reach the wallet."""
    fan, creator, call_id = make_call(rate=RATE, present=True, balance=100)
    clock.advance(30)
    service.meter()
    end(call_id, fan)
    assert wallet(fan.id) == 40
    take_back(fan.id, 90)
    assert (wallet(fan.id), ledger.owed_by(fan.id)) == (0, 50)

    assert refunds.refund_blocks(operator, call_id, None, f"k-{uuid.uuid4()}").refunded == [0, 1]
    assert (wallet(fan.id), ledger.owed_by(fan.id)) == (10, 0)
    assert refund_legs(call_id, 0) == {"debt": 30, "earnings": -24, "platform_fees": -6}
    assert refund_legs(call_id, 1) == {"debt": 20, "wallet": 10, "earnings": -24, "platform_fees": -6}
    assert ledger.verify() == []


def test_refunds_are_for_operators_only(clock, make_call, client, api_headers, make_creator):
    fan, creator, call_id = no_media_call(make_call)
    for user in (fan, creator, make_creator()):
        assert_error(post_refund(client, api_headers(user), call_id), 403, "not_an_operator")
    assert_error(client.post(f"/api/platform/calls/{call_id}/refund", json={}), 401)
    assert refund_transfers(call_id) == []


def test_bad_refund_requests_are_refused_with_nothing_moved(clock, make_call, operator, client, api_headers):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    clock.advance(30)
    service.meter()
    headers = api_headers(operator)
    for blocks in ([], "0", 0, [-1], [1.5], [True], ["0"], [None], [2**31], [2**63], {"k": 1}, [[0]],
                   [0] * (refunds.MAX_BLOCKS + 1)):
        assert_error(post_refund(client, headers, call_id, {"blocks": blocks}), 422, field="blocks")
    assert_error(post_refund(client, headers, call_id, {"blocks": [0, 5]}), 422, "invalid_block")
    for unknown in (call_id + 10_000, 2**63 - 1):
        assert_error(post_refund(client, headers, unknown), 404, "call_not_found")
    for raw in ("[]", "nope", '"x"', "{"):
        resp = client.post(f"/api/platform/calls/{call_id}/refund", data=raw, content_type="application/json",
                           headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
        assert_error(resp, 400)
    assert_error(client.post(f"/api/platform/calls/{call_id}/refund", json={}, headers=headers), 400,
                 "idempotency_key_required")
    assert_error(client.post(f"/api/platform/calls/{call_id}/refund", json={},
                             headers={**headers, "Idempotency-Key": "x" * 300}), 400, "invalid_idempotency_key")
    assert client.post("/api/platform/calls/abc/refund", json={}, headers=headers).status_code == 404
    assert refund_transfers(call_id) == [] and wallet(fan.id) == 940
    assert ok(client.post(f"/api/platform/calls/{call_id}/refund", headers={
        **headers, "Idempotency-Key": str(uuid.uuid4())}))["refunded"] == [0, 1]  # no body: all
    assert ledger.verify() == []


# ---- receipts -------------------------------------------------------------------------------------------


def test_both_parties_see_the_refund_in_the_history_and_strangers_do_not(clock, make_call, client, api_headers,
                                                                         make_fan):
    fan, creator, call_id = no_media_call(make_call)
    end(call_id, fan)
    sweep()
    history = ok(client.get(f"/api/billing/calls/{call_id}/history", headers=api_headers(fan)))["events"]
    assert ok(client.get(f"/api/billing/calls/{call_id}/history", headers=api_headers(creator)))["events"] == history
    refund = history[-1]
    assert refund == {"type": "block_refunded", "blockIndex": 0, "amountTokens": 30, "creatorShare": 24,
                      "platformShare": 6, "reason": "media_never_connected", "createdAt": refund["createdAt"]}
    # Like every call route, the call's history is its two parties' only (403 not_a_participant).
    body = assert_error(client.get(f"/api/billing/calls/{call_id}/history", headers=api_headers(make_fan())), 403,
                        "not_a_participant")
    assert "events" not in body


def test_both_call_pages_show_the_refund_and_the_net(clock, make_call, new_client):
    fan, creator, call_id = no_media_call(make_call)
    clock.advance(5)
    end(call_id, fan)
    sweep()
    for user, amount, earned in ((fan, "+30", None), (creator, "−24", "0")):
        browser = new_client()
        log_in(browser, user)
        page = browser.get(f"/calls/{call_id}").get_data(as_text=True)
        activity = browser.get(f"/calls/{call_id}/activity").get_data(as_text=True)
        for html in (page, activity):
            assert "Block 1 refunded" in html and amount in html and "(media never connected)" in html
            assert "Charged 30 · Refunded 30 · Net 0 tokens" in html
            if earned is not None:
                assert f'data-testid="call-earned">{earned}<' in html


def test_the_refund_reaches_the_fans_balance_and_both_call_pages_live(clock, make_call, ctx):
    fan, creator, call_id = no_media_call(make_call)
    end(call_id, fan)
    prefix = ctx.config["REDIS_PREFIX"]
    pubsub = get_redis().pubsub()
    channel = fresh_call(call_id).channel
    pubsub.subscribe(prefix + channel, prefix + user_channel(fan.id))
    try:
        pubsub.get_message(timeout=1)
        pubsub.get_message(timeout=1)
        sweep()
        got = {}
        for _ in range(10):
            message = pubsub.get_message(timeout=1)
            if message and message["type"] == "message":
                got[message["channel"].decode()[len(prefix):]] = message["data"].decode()
            if len(got) == 2:
                break
    finally:
        pubsub.close()
    assert f"call-state-{call_id}" in got[channel]  # the panel: each page then re-fetches its receipts
    assert "1,000" in got[user_channel(fan.id)]


# ---- the operators' section on /platform ---------------------------------------------------------------


def platform_client(new_client, user):
    browser = new_client()
    return browser, log_in(browser, user)


def form_post(browser, csrf, call_id, fields, htmx=True):
    return browser.post(f"/platform/calls/{call_id}/refund", data=fields,
                        headers={"X-CSRFToken": csrf, **({"HX-Request": "true"} if htmx else {})})


def test_platform_loads_the_calls_section_which_looks_calls_up(clock, make_call, operator, new_client):
    fan, creator, call_id = no_media_call(make_call)
    browser, _csrf = platform_client(new_client, operator)
    page = browser.get("/platform").get_data(as_text=True)
    assert 'hx-get="/platform/calls" hx-trigger="load"' in page
    section = browser.get("/platform/calls", headers={"HX-Request": "true"})
    assert section.status_code == 200 and 'id="platform-calls"' in section.get_data(as_text=True)
    assert "<html" not in section.get_data(as_text=True)
    whole = browser.get("/platform/calls").get_data(as_text=True)  # without htmx: a page, with a way back
    assert "<html" in whole and 'href="/platform"' in whole

    found = browser.get(f"/platform/calls?call=%23{call_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f"Call #{call_id}" in found and fan.display_name in found and creator.display_name in found
    assert "never connected" in found and "Charged 30 · Refunded 0 · Net 30 tokens" in found
    assert 'name="blocks" value="0"' in found
    for raw, status, message in (("abc", 422, "digits only"), ("\u00b2", 422, "digits only"),
                                 (str(call_id + 10_000), 404, "There is no call"),
                                 (str(2**63), 422, "digits only")):
        resp = browser.get(f"/platform/calls?call={raw}", headers={"HX-Request": "true"})
        assert resp.status_code == status and message in resp.get_data(as_text=True), raw


def test_the_platform_refund_form_reviews_then_refunds_once(clock, make_call, operator, new_client):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    clock.advance(30)
    service.meter()
    end(call_id, fan)
    browser, csrf = platform_client(new_client, operator)

    review = form_post(browser, csrf, call_id, {"blocks": ["1"]})
    html = review.get_data(as_text=True)
    assert review.status_code == 200 and "Refund block 2?" in html
    assert f"{fan.display_name} gets 30 tokens back: 24 from {creator.display_name}" in html
    assert 'name="confirm" value="1"' in html and 'name="idempotency_key"' in html
    assert refund_transfers(call_id) == []  # reviewing moves nothing

    key = str(uuid.uuid4())
    done = form_post(browser, csrf, call_id, {"blocks": "1", "confirm": "1", "idempotency_key": key})
    assert done.status_code == 200 and "Refunded block 2." in done.get_data(as_text=True)
    assert wallet(fan.id) == 970
    again = form_post(browser, csrf, call_id, {"blocks": "1", "confirm": "1", "idempotency_key": key})
    assert "Refunded block 2." in again.get_data(as_text=True)  # the same answer, nothing more
    assert len(refund_transfers(call_id)) == 1

    review = form_post(browser, csrf, call_id, {"all": "1"}).get_data(as_text=True)
    assert "Refund block 1?" in review
    done = form_post(browser, csrf, call_id, {"blocks": "0", "confirm": "1", "idempotency_key": str(uuid.uuid4())})
    assert "Refunded block 1." in done.get_data(as_text=True)
    html = done.get_data(as_text=True)
    assert "Charged 60 · Refunded 60 · Net 0 tokens" in html and "Every block that cost anything is refunded." in html
    assert "Nothing left to refund" in form_post(browser, csrf, call_id, {"all": "1"}).get_data(as_text=True)
    assert wallet(fan.id) == 1000
    assert ledger.verify() == []


def test_the_platform_refund_form_shows_errors_in_place_and_moves_nothing(clock, make_call, operator, new_client):
    fan, creator, call_id = make_call(rate=RATE, present=True)
    end(call_id, fan)
    browser, csrf = platform_client(new_client, operator)
    cases = [({}, 422, "Tick the blocks"), ({"blocks": "x"}, 422, "Tick the blocks"),
             ({"blocks": ["0", "-1"]}, 422, "Tick the blocks"), ({"blocks": "\u0663"}, 422, "Tick the blocks"),
             ({"blocks": str(2**40)}, 422, "Tick the blocks"), ({"blocks": "7"}, 422, "paid nothing for block"),
             ({"blocks": "0", "confirm": "1"}, 400, "Idempotency-Key"),
             ({"blocks": "0", "confirm": "1", "idempotency_key": " "}, 400, "Idempotency-Key")]
    for fields, status, message in cases:
        resp = form_post(browser, csrf, call_id, fields)
        html = resp.get_data(as_text=True)
        assert resp.status_code == status and message in html and 'data-testid="refund-error"' in html, fields
    pay_out(creator.id)
    resp = form_post(browser, csrf, call_id, {"blocks": "0", "confirm": "1", "idempotency_key": str(uuid.uuid4())})
    assert resp.status_code == 409 and "paid out" in resp.get_data(as_text=True)
    assert form_post(browser, csrf, call_id + 10_000, {"all": "1"}).status_code == 404
    assert refund_transfers(call_id) == [] and wallet(fan.id) == 970
    assert ledger.verify() == []


def test_the_calls_section_is_for_operators_only(clock, make_call, new_client, make_creator):
    fan, creator, call_id = no_media_call(make_call)
    for user in (fan, creator):
        browser, csrf = platform_client(new_client, user)
        assert browser.get("/platform/calls").status_code == 403
        assert browser.get(f"/platform/calls?call={call_id}").status_code == 403
        assert form_post(browser, csrf, call_id, {"blocks": "0", "confirm": "1",
                                                   "idempotency_key": str(uuid.uuid4())}).status_code == 403
    anonymous = new_client()
    assert anonymous.get("/platform/calls").status_code in (302, 303, 401)
    assert refund_transfers(call_id) == []
