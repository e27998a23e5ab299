"""Metering a call's timeline into blocks (DESIGN.md §5 Calls): charges at block
starts, catch-up, pause carry-over, presence grace, low balance and running dry,
exactly-once under concurrent meters, a killed worker, and the RQ job.

Real PostgreSQL, real Redis, real threads, processes and RQ; only the clock is
injected (app.extensions["clock"]), so blocks pass without sleeping.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import embedded, jobs, ledger
from app.auth.models import User
from app.calls import cron, service
from app.calls.billing import block_price
from app.errors import Conflict
from app.extensions import db, driver_connection
from tests.clock import install_clock
from tests.calls.helpers import (block_keys, block_transfer_kinds, charged_blocks, earnings, event_types, events,
                                 fresh_call, platform_fees, wallet, wallet_debits_for_call)
from tests.conftest import fresh_client
from tests.helpers import run_together
from worker import cron_jobs

pytestmark = pytest.mark.usefixtures("no_open_calls")

ROOT = Path(__file__).resolve().parents[2]


def meter():
    """One metering pass at the injected clock; plain numbers out."""
    return service.meter().to_dict()


def blocks_of(call_id: int) -> int:
    return fresh_call(call_id).blocks_charged


def cost(rate: int, blocks: int, b: int = 30) -> int:
    return sum(block_price(k, rate, b) for k in range(blocks))


def assert_charged_exactly(call_id: int, fan_id: int, rate: int, n: int) -> None:
    """Blocks 0..n−1 each charged once: one transfer, one event, the right price each."""
    call = fresh_call(call_id)
    assert call.blocks_charged == n
    assert call.total_charged == cost(rate, n)
    assert block_keys(call_id) == [f"call:{call_id}:block:{k}" for k in range(n)]
    assert charged_blocks(call_id) == list(range(n))
    assert wallet_debits_for_call(call_id, fan_id) == {k: block_price(k, rate, 30) for k in range(n)
                                                        if block_price(k, rate, 30)}


# ---- charges at block starts, catch-up -----------------------------------------------------------


def test_accept_charges_block_0_then_the_next_block_30_seconds_later(clock, make_call):
    fees_before = platform_fees()
    fan, creator, call_id = make_call(rate=25, balance=1000)
    call = fresh_call(call_id)
    assert (call.status, call.blocks_charged, call.total_charged) == ("active", 1, 13)
    assert call.accepted_at == clock.now
    assert block_keys(call_id) == [f"call:{call_id}:block:0"]
    assert block_transfer_kinds(call_id) == {"call_block"}
    assert wallet(fan.id) == 987
    assert earnings(creator.id) == ledger.split(13)[0] == 10
    assert platform_fees() - fees_before == 3

    clock.advance(29)
    assert meter() == {"metered": 1, "blocksCharged": 0, "callsEnded": 0}
    assert blocks_of(call_id) == 1 and wallet(fan.id) == 987

    clock.advance(1)  # exactly 30 s of active time: block 1 starts and is charged
    assert meter() == {"metered": 1, "blocksCharged": 1, "callsEnded": 0}
    assert_charged_exactly(call_id, fan.id, 25, 2)
    assert wallet(fan.id) == 1000 - 25
    assert earnings(creator.id) == 10 + 9
    assert platform_fees() - fees_before == 6

    # Running it again at the same moment charges nothing.
    assert meter() == {"metered": 1, "blocksCharged": 0, "callsEnded": 0}
    assert_charged_exactly(call_id, fan.id, 25, 2)
    assert ledger.verify() == []


def test_catch_up_after_10_minutes_charges_exactly_the_20_missing_blocks(clock, make_call):
    fan, creator, call_id = make_call(rate=25, balance=1000)
    clock.advance(30)
    assert meter()["blocksCharged"] == 1
    clock.advance(minutes=10)  # an outage: nobody metered for 10 minutes
    assert meter() == {"metered": 1, "blocksCharged": 20, "callsEnded": 0}
    assert_charged_exactly(call_id, fan.id, 25, 22)
    assert wallet(fan.id) == 1000 - cost(25, 22) == 1000 - 275
    assert earnings(creator.id) == sum(ledger.split(block_price(k, 25, 30))[0] for k in range(22))
    # Each block_charged event points at its own transfer, keyed by its block.
    rows = db.session.execute(text(
        "SELECT e.block_index, t.idempotency_key, e.amount, e.creator_share, e.platform_share "
        "FROM billing_events e JOIN ledger_transfers t ON t.id = e.transfer_id "
        "WHERE e.call_id = :c AND e.type = 'block_charged' ORDER BY e.block_index"), {"c": call_id}).all()
    assert [(k, key) for k, key, *_ in rows] == [(k, f"call:{call_id}:block:{k}") for k in range(22)]
    for k, _, amount, creator_share, platform_share in rows:
        assert amount == block_price(k, 25, 30)
        assert (creator_share, platform_share) == ledger.split(amount)
    assert event_types(call_id) == ["block_charged"] * 22  # nothing else happened
    assert meter()["blocksCharged"] == 0
    assert_charged_exactly(call_id, fan.id, 25, 22)
    assert ledger.verify() == []


def test_a_zero_price_block_is_logged_with_amount_0_and_moves_nothing(clock, make_call):
    fan, creator, call_id = make_call(rate=1, balance=10)
    clock.advance(60)
    assert meter()["blocksCharged"] == 2
    assert [(e[1], e[2]) for e in events(call_id) if e[0] == "block_charged"] == [(0, 1), (1, 0), (2, 1)]
    assert block_keys(call_id) == [f"call:{call_id}:block:0", f"call:{call_id}:block:2"]
    assert wallet(fan.id) == 8
    assert fresh_call(call_id).total_charged == 2 and fresh_call(call_id).blocks_charged == 3
    assert ledger.verify() == []


# ---- pause and resume --------------------------------------------------------------------------------


def test_a_10_minute_pause_charges_nothing_and_the_paid_block_carries_over(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=1000)
    clock.advance(10)
    call = service.pause(fan, call_id)
    assert (call.status, call.paused_by, call.active_ms, call.active_since) == ("paused", "fan", 10_000, None)

    for _ in range(20):  # ten minutes of meter ticks while paused
        clock.advance(30)
        assert meter()["blocksCharged"] == 0
    assert blocks_of(call_id) == 1 and wallet(fan.id) == 970

    call = service.resume(fan, call_id)
    resumed_at = clock.now
    assert (call.status, call.blocks_charged, call.active_since) == ("active", 1, resumed_at)
    # 10 s of block 0 were used; its other 20 s come first.
    clock.advance(19)
    assert meter()["blocksCharged"] == 0
    assert blocks_of(call_id) == 1
    clock.advance(1)
    assert meter()["blocksCharged"] == 1
    assert_charged_exactly(call_id, fan.id, 60, 2)
    assert wallet(fan.id) == 940
    assert [(t, k, r) for t, k, _, r in events(call_id)] == [
        ("block_charged", 0, None), ("paused", None, "fan"), ("resumed", None, "fan"), ("block_charged", 1, None)]


def test_either_party_pauses_the_other_can_resume_and_repeated_pauses_add_up(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=1000)
    clock.advance(25)
    service.pause(creator, call_id)
    clock.advance(minutes=3)
    assert service.pause(fan, call_id).paused_by == "creator"  # pausing a paused call changes nothing
    service.resume(fan, call_id)
    clock.advance(4)  # 29 s of active time
    service.pause(fan, call_id)
    assert fresh_call(call_id).active_ms == 29_000
    clock.advance(minutes=1)
    service.resume(creator, call_id)
    clock.advance(0.999)
    assert meter()["blocksCharged"] == 0
    clock.advance(0.001)  # 30 s of active time exactly
    assert meter()["blocksCharged"] == 1
    assert_charged_exactly(call_id, fan.id, 60, 2)


def test_pausing_exactly_at_a_block_start_charges_that_block(clock, make_call):
    """A block is charged at its start; pausing at that instant doesn't undo it."""
    fan, creator, call_id = make_call(rate=60, balance=1000)
    clock.advance(30)
    call = service.pause(fan, call_id)  # nobody metered: the pause bills up to its moment first
    assert (call.status, call.blocks_charged, call.active_ms) == ("paused", 2, 30_000)
    clock.advance(minutes=5)
    service.resume(fan, call_id)
    assert blocks_of(call_id) == 2  # block 1's 30 s are still unused
    clock.advance(29)
    assert meter()["blocksCharged"] == 0
    clock.advance(1)
    assert meter()["blocksCharged"] == 1
    assert_charged_exactly(call_id, fan.id, 60, 3)


def test_stop_ends_billing_for_good_and_keeps_the_started_block(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=1000)
    clock.advance(45)
    call = service.stop(creator, call_id)
    assert (call.status, call.end_reason, call.blocks_charged, call.active_ms) == ("ended", "billing_stopped", 2,
                                                                                  45_000)
    clock.advance(minutes=10)
    assert meter() == {"metered": 0, "blocksCharged": 0, "callsEnded": 0}
    assert_charged_exactly(call_id, fan.id, 60, 2)
    assert wallet(fan.id) == 940 and earnings(creator.id) == 48
    assert [(t, r) for t, _, _, r in events(call_id)][-2:] == [("stopped", "creator"), ("ended", "billing_stopped")]


# ---- presence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("party", ["fan", "creator"])
def test_a_party_gone_longer_than_the_grace_pauses_billing_from_the_end_of_the_grace(clock, make_call, party):
    fan, creator, call_id = make_call(rate=60, balance=1000)
    t0 = clock.now
    clock.advance(45)
    service.presence_changed(call_id, party, False)  # gone at 0:45; grace 20 s → pause at 1:05
    assert blocks_of(call_id) == 2  # the change billed up to its moment: block 1 (0:30)
    clock.advance(10)
    assert meter()["blocksCharged"] == 0  # 0:55: block 2 (1:00) is not due yet
    assert fresh_call(call_id).status == "active"
    clock.at(t0 + timedelta(minutes=10))
    assert meter()["blocksCharged"] == 1  # block 2 (started 1:00, before the pause) and nothing after
    call = fresh_call(call_id)
    assert (call.status, call.paused_by, call.blocks_charged, call.active_ms) == ("paused", "presence", 3, 65_000)
    assert wallet(fan.id) == 910
    assert ("paused", None, None, "presence") in events(call_id)

    service.presence_changed(call_id, party, True)  # back at 10:00: billing resumes at once
    call = fresh_call(call_id)
    assert (call.status, call.paused_by, call.active_since) == ("active", None, clock.now)
    assert events(call_id)[-1] == ("resumed", None, None, "presence")
    clock.advance(24)  # 65 s used: block 3 starts at 90 s of active time, 25 s after the return
    assert meter()["blocksCharged"] == 0
    clock.advance(1)
    assert meter()["blocksCharged"] == 1
    assert_charged_exactly(call_id, fan.id, 60, 4)


def test_a_return_after_the_grace_pauses_retroactively_even_if_no_meter_ran(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=1000)
    clock.advance(45)
    service.presence_changed(call_id, "creator", False)
    clock.advance(minutes=5)
    service.presence_changed(call_id, "creator", True)  # the first thing to bill since the drop
    call = fresh_call(call_id)
    assert (call.status, call.blocks_charged, call.active_ms) == ("active", 3, 65_000)
    assert [(t, r) for t, _, _, r in events(call_id)][-2:] == [("paused", "presence"), ("resumed", "presence")]
    assert wallet(fan.id) == 910


def test_a_drop_shorter_than_the_grace_does_not_pause(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=1000)
    clock.advance(45)
    service.presence_changed(call_id, "fan", False)
    clock.advance(19)
    assert meter()["blocksCharged"] == 1
    service.presence_changed(call_id, "fan", True)
    clock.advance(minutes=10)
    meter()
    call = fresh_call(call_id)
    assert call.status == "active" and call.paused_by is None
    assert_charged_exactly(call_id, fan.id, 60, (64 + 600) // 30 + 1)
    assert "paused" not in event_types(call_id)


def test_presence_is_counted_from_acceptance(clock, make_call):
    """Nobody's page reported in: the grace runs from acceptance, then billing pauses;
    both must be back before it resumes."""
    fan, creator, call_id = make_call(rate=60, balance=1000, present=False)
    assert blocks_of(call_id) == 1
    clock.advance(19)
    assert meter()["blocksCharged"] == 0 and fresh_call(call_id).status == "active"
    clock.advance(minutes=5)
    assert meter()["blocksCharged"] == 0
    call = fresh_call(call_id)
    assert (call.status, call.paused_by, call.active_ms, call.blocks_charged) == ("paused", "presence", 20_000, 1)

    clock.advance(minutes=1)
    service.presence_changed(call_id, "fan", True)
    assert fresh_call(call_id).status == "paused"  # the creator is still missing
    clock.advance(minutes=1)
    service.presence_changed(call_id, "creator", True)
    assert fresh_call(call_id).status == "active"
    clock.advance(9)
    assert meter()["blocksCharged"] == 0
    clock.advance(1)  # 20 + 10 = 30 s of active time
    assert meter()["blocksCharged"] == 1
    assert_charged_exactly(call_id, fan.id, 60, 2)
    assert wallet(fan.id) == 940


def test_when_the_party_gone_too_long_returns_billing_resumes_if_the_other_is_only_within_the_grace(
        clock, make_call):
    """The pause rule: billing stops while some party has been missing for more than the
    grace. The fan is gone 0:35–1:15 (pause from 0:55); the creator drops at 1:10 and is
    back at 1:25 (15 s, within the grace). From the fan's return at 1:15 nobody is past
    the grace, so the clock runs again from 1:15, not from 1:25."""
    fan, creator, call_id = make_call(rate=60, balance=1000)
    t0 = clock.now
    clock.at(t0 + timedelta(seconds=35))
    service.presence_changed(call_id, "fan", False)
    clock.at(t0 + timedelta(seconds=70))
    service.presence_changed(call_id, "creator", False)
    call = fresh_call(call_id)
    assert (call.status, call.paused_by, call.active_ms, call.blocks_charged) == ("paused", "presence", 55_000, 2)
    clock.at(t0 + timedelta(seconds=75))
    service.presence_changed(call_id, "fan", True)
    clock.at(t0 + timedelta(seconds=85))
    service.presence_changed(call_id, "creator", True)
    meter()
    call = fresh_call(call_id)
    assert call.status == "active"
    # 55 s before the pause + 10 s since 1:15: block 2 (60 s of active time) started at 1:20.
    assert call.blocks_charged == 3, (call.active_ms, call.active_since)
    assert_charged_exactly(call_id, fan.id, 60, 3)


def test_a_manual_pause_is_not_resumed_by_presence(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=1000)
    clock.advance(10)
    service.pause(creator, call_id)
    service.presence_changed(call_id, "fan", False)
    clock.advance(minutes=2)
    meter()
    service.presence_changed(call_id, "fan", True)
    clock.advance(minutes=2)
    meter()
    call = fresh_call(call_id)
    assert (call.status, call.paused_by, call.blocks_charged, call.active_ms) == ("paused", "creator", 1, 10_000)
    assert "resumed" not in event_types(call_id)
    service.resume(creator, call_id)
    clock.advance(20)
    assert meter()["blocksCharged"] == 1


# ---- low balance and running dry ------------------------------------------------------------------------


def test_low_balance_is_logged_once_per_block_then_the_call_ends_unpaid(clock, make_call):
    """Rate 60 (30 per block), 150 tokens: five blocks are paid, the sixth is not."""
    fees_before = platform_fees()
    fan, creator, call_id = make_call(rate=60, balance=150)
    for _ in range(2):  # blocks 1 and 2
        clock.advance(30)
        assert meter()["blocksCharged"] == 1
    assert "low_balance" not in event_types(call_id)  # 60 left covers blocks 3 and 4

    clock.advance(30)  # block 3 → 30 left, less than the next two blocks (60)
    assert meter()["blocksCharged"] == 1
    assert events(call_id)[-1] == ("low_balance", 4, 30, None)
    for _ in range(3):  # later meter runs inside the same block warn no more
        clock.advance(9)
        meter()
    assert event_types(call_id).count("low_balance") == 1

    clock.advance(3)  # 2:00: block 4 takes the last 30
    assert meter()["blocksCharged"] == 1
    assert wallet(fan.id) == 0
    assert events(call_id)[-1] == ("low_balance", 5, 60, None)
    assert event_types(call_id).count("low_balance") == 2

    clock.advance(30)  # 2:30: block 5 can't be paid
    assert meter() == {"metered": 1, "blocksCharged": 0, "callsEnded": 1}
    call = fresh_call(call_id)
    assert (call.status, call.end_reason, call.blocks_charged, call.total_charged) == (
        "ended", "insufficient_funds", 5, 150)
    assert call.active_since is None and call.active_ms == 150_000
    assert [(t, k, a, r) for t, k, a, r in events(call_id)][-2:] == [
        ("insufficient_funds", 5, 30, None), ("ended", None, None, "insufficient_funds")]
    assert wallet(fan.id) == 0
    assert earnings(creator.id) == 5 * 24 and platform_fees() - fees_before == 5 * 6
    assert_charged_exactly(call_id, fan.id, 60, 5)
    clock.advance(minutes=5)
    assert meter() == {"metered": 0, "blocksCharged": 0, "callsEnded": 0}
    assert ledger.verify() == []


def test_a_long_outage_charges_what_the_wallet_covers_then_ends_the_call(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=100)  # blocks 0..2 paid, 10 left
    clock.advance(minutes=10)
    assert meter() == {"metered": 1, "blocksCharged": 2, "callsEnded": 1}
    call = fresh_call(call_id)
    assert (call.status, call.end_reason, call.blocks_charged, call.active_ms) == (
        "ended", "insufficient_funds", 3, 90_000)
    assert ("insufficient_funds", 3, 20, None) in events(call_id)
    assert wallet(fan.id) == 10  # the unpaid block took nothing
    assert earnings(creator.id) == 3 * 24
    assert_charged_exactly(call_id, fan.id, 60, 3)
    assert ledger.verify() == []


def test_a_call_running_dry_does_not_stop_other_calls_in_the_same_meter_run(clock, make_call):
    rich_fan, _, rich = make_call(rate=60, balance=10_000)
    broke_fan, _, broke = make_call(rate=60, balance=60)
    rich_fan2, _, rich2 = make_call(rate=60, balance=10_000)
    clock.advance(60)
    assert meter() == {"metered": 3, "blocksCharged": 2 + 1 + 2, "callsEnded": 1}
    assert_charged_exactly(rich, rich_fan.id, 60, 3)
    assert_charged_exactly(rich2, rich_fan2.id, 60, 3)
    assert_charged_exactly(broke, broke_fan.id, 60, 2)
    assert fresh_call(broke).end_reason == "insufficient_funds"
    assert ledger.verify() == []


def test_the_meters_threads_share_a_tick_and_bill_each_call_once(clock, make_call):
    made = [make_call(rate=25, balance=1000) for _ in range(23)]
    clock.advance(minutes=2)  # blocks 1..4 due on every call
    result = service.meter(batch=2, threads=4).to_dict()
    # 12 batches taken in turn by 4 threads: each call read (and counted) once.
    assert result == {"metered": 23, "blocksCharged": 23 * 4, "callsEnded": 0}
    for fan, _, call_id in made:
        assert_charged_exactly(call_id, fan.id, 25, 5)
        assert wallet(fan.id) == 1000 - cost(25, 5)
    assert ledger.verify() == []


def test_ending_unpaid_through_a_state_change_rather_than_the_meter(clock, make_call):
    """The pause that first notices the unpaid block ends the call instead."""
    fan, creator, call_id = make_call(rate=60, balance=60)  # blocks 0 and 1, nothing for block 2 (1:00)
    clock.advance(65)
    call = service.pause(fan, call_id)
    assert (call.status, call.end_reason, call.blocks_charged) == ("ended", "insufficient_funds", 2)
    assert ("insufficient_funds", 2, 30, None) in events(call_id)
    assert wallet(fan.id) == 0 and earnings(creator.id) == 48
    assert_charged_exactly(call_id, fan.id, 60, 2)
    assert ledger.verify() == []


# ---- unanswered requests, fixed terms ------------------------------------------------------------------


def test_an_unanswered_request_expires_after_two_minutes_of_meter_time(clock, make_call):
    fan, creator, call_id = make_call(rate=60, balance=1000, accept=False)
    clock.advance(119)
    assert meter() == {"metered": 0, "blocksCharged": 0, "callsEnded": 0}
    assert fresh_call(call_id).status == "requested"
    clock.advance(2)
    meter()
    call = fresh_call(call_id)
    assert (call.status, call.end_reason, call.blocks_charged, call.ended_at) == ("expired", None, 0, clock.now)
    with pytest.raises(Conflict) as refused:
        service.accept(db.session.get(User, creator.id), call_id)
    assert refused.value.code == "call_over"
    assert wallet(fan.id) == 1000 and events(call_id) == []
    # The fan may ask again.
    assert service.init_call(db.session.get(User, fan.id), creator.id).status == "requested"


def test_rate_and_block_length_are_fixed_when_the_call_is_requested(app, clock, make_app, make_fan, make_creator):
    """A call requested under BILLING_BLOCK_SECONDS=15 at rate 25 is billed in 15 s blocks
    at 25/min to the end, whatever the creator or the config say later."""
    creator, fan = make_creator(), make_fan(balance=1000)
    creator_id, fan_id = creator.id, fan.id
    short_blocks = make_app(BILLING_BLOCK_SECONDS=15)
    install_clock(short_blocks, clock)
    with short_blocks.app_context():
        service.update_settings(db.session.get(User, creator_id), 25, True)
        call_id = service.init_call(db.session.get(User, fan_id), creator_id).id
        for party in ("fan", "creator"):
            service.presence_changed(call_id, party, True)
        db.session.remove()
    service.update_settings(db.session.get(User, creator_id), 100, True)  # a later price change
    call = service.accept(db.session.get(User, creator_id), call_id)  # accepted (and metered) under B = 30
    assert (call.rate, call.block_seconds, call.blocks_charged, call.total_charged) == (25, 15, 1, 7)
    clock.advance(60)
    assert meter()["blocksCharged"] == 4  # blocks at 15, 30, 45 and 60 s
    prices = [block_price(k, 25, 15) for k in range(5)]
    assert prices == [7, 6, 6, 6, 7]
    assert [(e[1], e[2]) for e in events(call_id) if e[0] == "block_charged"] == list(enumerate(prices))
    assert wallet(fan_id) == 1000 - 32 and fresh_call(call_id).total_charged == 32
    assert ledger.verify() == []


# ---- exactly once under concurrency ---------------------------------------------------------------------

WEBHOOK_SECRET = "meter-secret-for-tests"
RATES = (25, 60, 7, 99, 250)


def test_concurrent_meters_and_the_webhook_charge_each_of_200_blocks_exactly_once(app, clock, make_call, make_app):
    """20 active calls × 10 blocks. At every step of the clock five meter() threads and
    the HTTP webhook race; every block is charged exactly once, and the runs' own
    totals add up to exactly the blocks that were due."""
    rates = [RATES[i % len(RATES)] for i in range(20)]
    made = [make_call(rate=rate, balance=cost(rate, 12) + 100) for rate in rates]
    call_ids = [call_id for _, _, call_id in made]
    fan_ids = [fan.id for fan, _, _ in made]
    creator_ids = [creator.id for _, creator, _ in made]
    earnings_before = {cid: earnings(cid) for cid in creator_ids}  # block 0 is already in
    fees_before = platform_fees()
    hook_app = make_app(BILLING_WEBHOOK_SECRET=WEBHOOK_SECRET)
    install_clock(hook_app, clock)
    t0 = clock.now
    results = []

    def race(i):
        if i == 0:
            resp = fresh_client(hook_app).post("/api/billing/meter", headers={"X-Billing-Secret": WEBHOOK_SECRET})
            assert resp.status_code == 200, resp.get_data(as_text=True)
            return resp.get_json()
        return meter()

    for step in (30, 60, 30, 90, 30, 30, 0):  # 270 s in all: blocks 0..9 due; the last step is a replay
        clock.advance(step)
        ran = run_together(app, 6, race)
        assert not [r for r in ran if isinstance(r, Exception)], ran
        results += ran
        due = int((clock.now - t0).total_seconds()) // 30 + 1
        assert [blocks_of(call_id) for call_id in call_ids] == [due] * 20, step

    # Block 0 of each call was charged at acceptance; the runs charged the other 180 between them.
    assert sum(r["blocksCharged"] for r in results) == 180
    assert sum(r["callsEnded"] for r in results) == 0
    for fan_id, call_id, rate in zip(fan_ids, call_ids, rates, strict=True):
        assert_charged_exactly(call_id, fan_id, rate, 10)
        assert wallet(fan_id) == cost(rate, 12) + 100 - cost(rate, 10)
    for creator_id, rate in zip(creator_ids, rates, strict=True):
        assert earnings(creator_id) - earnings_before[creator_id] == sum(
            ledger.split(block_price(k, rate, 30))[0] for k in range(1, 10))
    assert platform_fees() - fees_before == sum(
        ledger.split(block_price(k, rate, 30))[1] for rate in rates for k in range(1, 10))
    assert db.session.scalar(text(
        "SELECT count(*) FROM ledger_transfers WHERE kind = 'call_block' "
        "AND split_part(idempotency_key, ':', 2)::bigint = ANY(:ids)"), {"ids": call_ids}) == 200
    assert db.session.scalar(text(
        "SELECT count(*) FROM billing_events WHERE type = 'block_charged' AND call_id = ANY(:ids)"),
        {"ids": call_ids}) == 200
    assert ledger.verify() == []


def test_meters_racing_state_changes_still_charge_each_block_once(app, clock, make_call):
    """Meters (which skip rows another biller holds) race presence reports and pause/resume
    pairs on the same calls (which wait for the row and bill up to their moment)."""
    made = [make_call(rate=60, balance=2000) for _ in range(10)]
    call_ids = [call_id for _, _, call_id in made]
    fan_ids = [fan.id for fan, _, _ in made]
    t0 = clock.now

    def race(i):
        if i == 0:  # re-report presence: bills up to now, changes nothing else
            for call_id in call_ids:
                service.presence_changed(call_id, "creator", True)
        elif i == 1:  # a zero-length pause: bills up to now, then the clock runs again
            for fan_id, call_id in zip(fan_ids, call_ids, strict=True):
                fan = db.session.get(User, fan_id)
                service.pause(fan, call_id)
                service.resume(fan, call_id)
        else:
            return meter()
        return None

    for step in (30, 30, 120, 30, 0):
        clock.advance(step)
        ran = run_together(app, 8, race)
        assert not [r for r in ran if isinstance(r, Exception)], ran
        due = int((clock.now - t0).total_seconds()) // 30 + 1
        assert [blocks_of(call_id) for call_id in call_ids] == [due] * 10
    for fan_id, call_id in zip(fan_ids, call_ids, strict=True):
        assert_charged_exactly(call_id, fan_id, 60, 8)
        assert fresh_call(call_id).status == "active"
        assert wallet(fan_id) == 2000 - 8 * 30
    assert ledger.verify() == []


# ---- a killed worker ---------------------------------------------------------------------------------------

CHILD = """
import sys
from datetime import datetime
from app import create_app
from app.calls import cron, service
at = datetime.fromisoformat(sys.argv[1])
app = create_app()
app.extensions["clock"] = lambda: at
with app.app_context():
    print("ready", flush=True)
    print("metered", service.meter(batch=int(sys.argv[2])).to_dict(), flush=True)
"""


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ChildMeter:
    """`service.meter(batch=…)` in a child process on the session's database and Redis,
    with its own injected clock; its database sessions carry a unique application_name."""

    def __init__(self, services, tmp_path, at, batch, threads=1):
        self.dsn = libpq(services[0])
        self.app_name = f"calls-meter-child-{uuid.uuid4().hex[:8]}"
        self.log_path = tmp_path / "child.log"
        env = embedded.env_with_services(services[0], services[1])
        env.update(APP_ENV="test", SECRET_KEY="calls-test-secret", PYTHONUNBUFFERED="1",
                   INSTANCE_DIR=str(tmp_path / "instance"), PGAPPNAME=self.app_name,
                   METER_THREADS=str(threads))
        env.pop("FLASK_DEBUG", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD, at.isoformat(), str(batch)], cwd=ROOT,
                                         env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def query(self, sql, params=()):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchone()[0]

    def backends(self, waiting_on_a_lock=False) -> int:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        if waiting_on_a_lock:
            sql += " AND wait_event_type = 'Lock'"
        return self.query(sql, (self.app_name,))

    def wait_for(self, condition, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.log()}"
            time.sleep(0.02)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def wait_until_its_transaction_is_gone(self):
        """After SIGKILL the server notices the dead client at its next read and rolls the
        child's open transaction back; wait for that (it holds row locks until then)."""
        deadline = time.monotonic() + 15
        while self.backends() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.backends():  # a backend that never noticed: what a DBA would do
            self.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                       (self.app_name,))
            self.wait_for(lambda: self.backends() == 0, "the terminated backend to exit")


def committed_blocks(dsn, call_ids) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = dict(conn.execute("SELECT id, blocks_charged FROM calls WHERE id = ANY(%s)", (call_ids,)).fetchall())
    return [rows[c] for c in call_ids]


@pytest.mark.parametrize("threads, committed", [
    (1, [11] * 10 + [1] * 10),  # batches 1 and 2 committed; 3 blocked; 4 never started
    (2, [11] * 10 + [1] * 5 + [11] * 5),  # the other thread went on to batch 4
])
def test_a_meter_killed_while_blocked_mid_batch_loses_only_that_batch_and_a_rerun_charges_it_once(
        services, clock, make_call, tmp_path, threads, committed):
    made = [make_call(rate=60, balance=1000) for _ in range(20)]  # ids ascending: the meter's order
    call_ids = [call_id for _, _, call_id in made]
    at = clock.advance(minutes=5)  # blocks 1..10 of every call are due
    locked_fan = made[12][0]  # third batch of 5: calls 10..14
    wallet_id = ledger.account_for(locked_fan.id, "wallet").id
    db.session.commit()

    locker = psycopg.connect(libpq(services[0]))  # an open transaction holding call 12's fan's wallet
    child = None
    try:
        locker.execute("SELECT id FROM ledger_accounts WHERE id = %s FOR UPDATE", (wallet_id,))
        child = ChildMeter(services, tmp_path, at, batch=5, threads=threads)
        child.wait_for(lambda: child.proc.poll() is None and child.backends(waiting_on_a_lock=True) >= 1
                       or child.proc.poll() is not None, "the child to block on the locked wallet")
        assert child.proc.poll() is None, f"child exited early: {child.log()}"
        # Batch 3 has charged calls 10 and 11 uncommitted and waits; every other batch
        # this child's threads reached is committed.
        child.wait_for(lambda: committed_blocks(child.dsn, call_ids) == committed, "the other batches' commits")
        time.sleep(0.3)
        assert child.proc.poll() is None and child.backends(waiting_on_a_lock=True) >= 1
        assert committed_blocks(child.dsn, call_ids) == committed
        child.kill()
        assert child.proc.returncode == -signal.SIGKILL
    finally:
        if child is not None:
            child.kill()
        locker.rollback()
        locker.close()
    child.wait_until_its_transaction_is_gone()

    db.session.rollback()
    assert committed_blocks(child.dsn, call_ids) == committed
    for (fan, _, call_id), n in zip(made, committed, strict=True):
        assert_charged_exactly(call_id, fan.id, 60, n)
    assert ledger.verify() == []

    # The next tick finishes the job: the missing blocks, once each.
    missing = sum(11 - n for n in committed)
    assert meter() == {"metered": 20, "blocksCharged": missing, "callsEnded": 0}
    for fan, _, call_id in made:
        assert_charged_exactly(call_id, fan.id, 60, 11)
        assert wallet(fan.id) == 1000 - 11 * 30
    assert ledger.verify() == []


@pytest.mark.parametrize("seed, threads", [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)])
def test_a_meter_killed_at_a_random_moment_leaves_whole_batches_and_a_rerun_charges_each_block_once(
        services, clock, make_call, tmp_path, seed, threads):
    rng = random.Random(seed)
    made = [make_call(rate=25, balance=1000) for _ in range(20)]
    call_ids = [call_id for _, _, call_id in made]
    at = clock.advance(minutes=30)  # 61 blocks due per call: 1,200 to charge in batches of 5
    db.session.commit()
    child = ChildMeter(services, tmp_path, at, batch=5, threads=threads)
    try:
        # Once its first batch is in, kill it at a random moment of the ~1.5 s the rest takes.
        child.wait_for(lambda: committed_blocks(child.dsn, call_ids[:1]) == [61] or child.proc.poll() is not None,
                       "the child's first batch")
        time.sleep(rng.uniform(0.0, 1.0))
        finished = child.proc.poll() is not None
        child.kill()
    finally:
        child.kill()
    child.wait_until_its_transaction_is_gone()

    db.session.rollback()
    after_kill = committed_blocks(child.dsn, call_ids)
    batches = [after_kill[i:i + 5] for i in range(0, 20, 5)]
    # A batch is one transaction: all of it or none of it; one thread commits them in id order.
    assert all(b in ([61] * 5, [1] * 5) for b in batches), (seed, after_kill, child.log())
    done = [b[0] == 61 for b in batches]
    if threads == 1:
        assert done == sorted(done, reverse=True), (seed, after_kill)
    assert ledger.verify() == []
    if finished:
        assert all(done) and "metered" in child.log()

    result = meter()
    assert result["blocksCharged"] == 60 * after_kill.count(1), (seed, after_kill)
    for fan, _, call_id in made:
        assert_charged_exactly(call_id, fan.id, 25, 61)
        assert wallet(fan.id) == 1000 - cost(25, 61)
    assert ledger.verify() == []


# ---- the RQ job -----------------------------------------------------------------------------------------------


def test_meter_calls_is_a_cron_job_and_charges_due_blocks_in_a_real_rq_worker(ctx, services, clock, make_call):
    assert (cron.meter_calls, ctx.config["BILLING_TICK_SECONDS"]) in cron_jobs()
    fan, creator, call_id = make_call(rate=60, balance=1000)
    fan_id, creator_id = fan.id, creator.id  # the job's app context releases this session's rows
    clock.advance(95)  # blocks 1, 2 and 3 are due
    connection = Redis.from_url(services[1])
    # Both call pages are live: their heartbeats are what the job's presence sweep reads
    # first (without them it would rightly report both parties gone).
    presence = f"{ctx.config['REDIS_PREFIX']}call-presence:{call_id}:"
    for party in ("fan", "creator"):
        connection.zadd(presence + party, {f"page-{party}": time.time()})
    queue = Queue(jobs.queue_name(), connection=connection)
    job = queue.enqueue(cron.meter_calls)
    assert job.func_name == "app.calls.cron.meter_calls"
    assert blocks_of(call_id) == 1  # queued, not run

    SimpleWorker([queue], connection=connection).work(burst=True)
    job = Job.fetch(job.id, connection=connection)
    assert job.get_status() == "finished", job.latest_result()
    assert job.return_value() == {"metered": 1, "blocksCharged": 3, "callsEnded": 0}
    assert_charged_exactly(call_id, fan_id, 60, 4)
    assert wallet(fan_id) == 880 and earnings(creator_id) == 4 * 24

    # A second run of the job (two crons, a retry) charges nothing more.
    again = queue.enqueue(cron.meter_calls)
    SimpleWorker([queue], connection=connection).work(burst=True)
    again = Job.fetch(again.id, connection=connection)
    assert again.return_value() == {"metered": 1, "blocksCharged": 0, "callsEnded": 0}
    assert_charged_exactly(call_id, fan_id, 60, 4)
    assert ledger.verify() == []


def test_the_claims_due_filter_agrees_with_the_billing_rule_to_the_microsecond(clock, make_call):
    """The meter locks only calls with a block due or a presence pause to apply; its SQL
    test of "a block is due" (`service._WINDOW`) says yes exactly when `billing.blocks_due`
    does, for banked time, a running segment with microseconds, and moments right at,
    just before and just after a block boundary."""
    from app.calls import billing
    _, _, call_id = make_call(rate=25, balance=1000)
    now = clock.now
    gone_before = now - timedelta(days=1)  # nobody gone: only the block rule decides
    rng = random.Random(19)
    conn = driver_connection()
    try:
        for _ in range(300):
            block_seconds = rng.choice((1, 30, 45, 3600))
            active_ms = rng.randrange(0, 10 * block_seconds * 1000)
            # The running segment ends within ±2 ms (and µs) of a block boundary, or anywhere.
            charged = rng.randrange(0, 12)
            boundary_ms = charged * block_seconds * 1000 - active_ms
            running_us = max(0, boundary_ms * 1000 + rng.choice((-2001, -1000, -1, 0, 1, 999, 1000, 2001)))
            if rng.random() < 0.3:
                running_us = rng.randrange(0, 20 * block_seconds * 1_000_000)
            since = now - timedelta(microseconds=running_us)
            conn.execute("UPDATE calls SET block_seconds = %s, active_ms = %s, active_since = %s, blocks_charged = %s "
                         "WHERE id = %s", (block_seconds, active_ms, since, charged, call_id))
            due = dict(conn.execute(service._WINDOW, {"now": now, "gone_before": gone_before, "after": call_id - 1,
                                                      "size": 1}).fetchall())[call_id]
            expected = charged < billing.blocks_due(billing.active_ms_at(active_ms, since, now), block_seconds)
            assert due is expected, (block_seconds, active_ms, running_us, charged)
    finally:
        db.session.rollback()


def test_a_tick_between_block_boundaries_needs_no_call_row_lock(clock, make_call, services):
    """A tick with nothing due goes over the running calls without locking them (so a
    tick costs an index scan, not a lock per call, while nothing is due), and still
    counts them as metered; once a block is due, a row another transaction holds is
    skipped as before and billed by the next tick."""
    fan, _, call_id = make_call(rate=60, balance=1000)
    holder = psycopg.connect(make_url(services[0]).set(drivername="postgresql").render_as_string(
        hide_password=False))
    try:
        holder.execute("SELECT 1 FROM calls WHERE id = %s FOR UPDATE", (call_id,))
        clock.advance(29)
        assert meter() == {"metered": 1, "blocksCharged": 0, "callsEnded": 0}
        clock.advance(1)
        assert meter() == {"metered": 0, "blocksCharged": 0, "callsEnded": 0}
    finally:
        holder.rollback()
        holder.close()
    assert meter() == {"metered": 1, "blocksCharged": 1, "callsEnded": 0}
    assert_charged_exactly(call_id, fan.id, 60, 2)


@pytest.mark.parametrize("threads", [1, 3])
def test_calls_with_and_without_a_due_block_across_small_batches_are_each_counted_and_billed_once(
        clock, make_call, threads):
    """Claims walk windows of `batch` running calls and gather up to `batch` due ones:
    however due and not-due calls interleave, each running call is counted once and
    each due block charged once."""
    made = []
    for _ in range(7):
        made.append(make_call(rate=60, balance=1000))
        clock.advance(10)  # accepted 10 s apart: at any moment some have a block due, some not
    clock.advance(5)  # 75 s after the first: ages 75, 65 … 15 s, so blocks 1 and 2, 1, or none due
    expected = {call_id: 1 + int((clock.now - fresh_call(call_id).accepted_at).total_seconds()) // 30
                for _, _, call_id in made}
    assert sorted(expected.values()) == [1, 1, 2, 2, 2, 3, 3]
    due = sum(n - 1 for n in expected.values())
    assert service.meter(batch=2, threads=threads).to_dict() == {"metered": 7, "blocksCharged": due, "callsEnded": 0}
    for fan, _, call_id in made:
        assert_charged_exactly(call_id, fan.id, 60, expected[call_id])
    assert service.meter(batch=2, threads=threads).to_dict() == {"metered": 7, "blocksCharged": 0, "callsEnded": 0}
