"""The dashboards and issue 15's money movements (DESIGN.md §7, §11): a call
block's refund comes off the creator's calls earnings, the platform's calls
fees and the fan's calls spending everywhere they show — also when it repays a
fan's debt rather than landing in their wallet —; payouts are not earnings
lost; card refunds and chargebacks are not spending, and /platform shows what
they took back and what fans owe.

Real PostgreSQL and Redis: blocks are billed by the real meter, refunded by
app/calls/refunds.py; payouts and card reversals are the ledger transfers their
services post (tests/dashboard/conftest.py `History`). Every figure is checked
from the entries (before the rollup job) and again from the rollups.
"""
from __future__ import annotations

import csv
import io
import uuid

import pytest
from sqlalchemy import text

from app import ledger
from app.calls import refunds
from app.calls import service as calls
from app.dashboard import rollups, service
from app.extensions import db
from app.tips import service as tips
from tests.dashboard.test_pages import figure, get, table_rows
from tests.dashboard.test_rollups import assert_rollups_are_direct_sums

pytestmark = pytest.mark.usefixtures("no_open_calls")

RATE = 60  # tokens/min: a 30-second block costs 30, split 24 (creator) / 6 (platform)


def three_block_call(clock, make_call, **kw):
    """A call billed three blocks of 30 tokens by the real meter, then ended."""
    scene = make_call(rate=RATE, **kw)  # block 0 charged on accept
    for _ in range(2):
        clock.advance(30)
        calls.meter()
    calls.end(scene.fan, scene.call_id)
    return scene


def refund(operator, call_id, blocks):
    return refunds.refund_blocks(operator, call_id, blocks, f"r-{uuid.uuid4()}").refunded


def csv_rows(chunks) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(chunks))))[1:]


def fees(operator, range_: str) -> dict[str, int]:
    return service.platform_overview(operator, range_).fees_by_source


def wallet_legs(transfer_key: str) -> dict[str, int]:
    """Account kind → amount of the transfer's legs."""
    return dict(db.session.execute(text(
        "SELECT a.kind, e.amount FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "JOIN ledger_transfers t ON t.id = e.transfer_id WHERE t.idempotency_key = :k"), {"k": transfer_key}).all())


def read_twice(check) -> None:
    """Run `check` on figures read from the entries, then again after the rollup job."""
    check()
    assert rollups.run(wait_seconds=10)["deferred"] is False
    check()
    db.session.rollback()
    assert_rollups_are_direct_sums(rollups.watermark())


# ---- a call block's refund ------------------------------------------------------------

def test_a_refunded_block_comes_off_calls_earnings_fees_and_spending_in_every_view(ctx, clock, make_call, operator,
                                                                                  client, api_headers):
    fan, creator, call_id = three_block_call(clock, make_call)
    fees_before = {r: fees(operator, r)["calls"] for r in service.RANGES}
    assert service.creator_earnings(creator, "all").by_source["calls"] == 72

    assert refund(operator, call_id, [1]) == [1]

    def check():
        for range_ in service.RANGES:
            earned = service.creator_earnings(creator, range_)
            assert (earned.by_source, earned.total) == ({"tips": 0, "tickets": 0, "calls": 48}, 48), range_
            assert service.earnings_by_day(creator, range_)[-1].calls == 48
            assert [(f.user_id, f.total) for f in service.top_fans(creator, range_)] == [(fan.id, 48)]
            assert [(c.call_id, c.blocks, c.refunded, c.total) for c in service.call_revenue(creator, range_)] == [
                (call_id, 3, 1, 48)]
            assert fees(operator, range_)["calls"] == fees_before[range_] - 6
            spent = service.fan_spending(fan, range_)
            assert (spent.by_type, spent.total) == ({"tips": 0, "tickets": 0, "calls": 60}, 60)
            assert [(c.creator_id, c.total) for c in spent.by_creator] == [(creator.id, 60)]
        assert [m.calls for m in service.spending_by_month(fan)] == [60]
        lines = service.spending_lines(fan, "today")
        assert [(line.type, line.amount, line.creator_name) for line in lines] == [
            ("refund", -30, creator.display_name)] + [("calls", 30, creator.display_name)] * 3
        assert lines[0].reference == f"Refund: call #{call_id}, block 2"
        assert lines[0].receipt_url == f"/calls/{call_id}"  # the call's receipts list the refund
        api = client.get("/api/fan/spending?range=today", headers=api_headers(fan)).get_json()
        assert api["byType"]["calls"] == 60 and api["total"] == 60
        api = client.get("/api/creator/earnings?range=all", headers=api_headers(creator)).get_json()
        assert api["bySource"]["calls"] == 48 and api["total"] == 48

    read_twice(check)
    earnings_csv = csv_rows(service.export_earnings_csv(creator, "all"))
    assert [r[1:] for r in earnings_csv] == [
        ["calls", fan.display_name, "30", "24", "6", f"call:{call_id}:block:{k}"] for k in range(3)] + [
        ["calls", fan.display_name, "-30", "-24", "-6", f"call:{call_id}:refund:block:1"]]
    spending_csv = csv_rows(service.export_spending_csv(fan, "all"))
    assert [r[1:] for r in spending_csv] == [
        ["calls", creator.display_name, "30", f"Call #{call_id}, block {k + 1}"] for k in range(3)] + [
        ["refund", creator.display_name, "-30", f"Refund: call #{call_id}, block 2"]]
    assert ledger.verify() == []


def test_a_refund_that_repays_debt_counts_in_full_once_and_still_names_the_fan(ctx, clock, make_call, history):
    """Block 0's refund only repays what the fan owes (no wallet leg), block 1's repays
    the rest and lands in the wallet: each is one payment of -30 on the fan's side, and
    the creator's side still knows which fan it was."""
    h = history(0)
    fan, creator, call_id = three_block_call(clock, make_call)  # 1,000 bought, 910 left
    h.take_back(fan, 950)                                      # the wallet's 910, and 40 owed
    assert ledger.owed_by(fan.id) == 40

    assert h.refund(call_id, [0]) == [0]
    assert wallet_legs(f"call:{call_id}:refund:block:0") == {"debt": 30, "earnings": -24, "platform_fees": -6}
    assert h.refund(call_id, [1]) == [1]
    assert wallet_legs(f"call:{call_id}:refund:block:1") == {"debt": 10, "wallet": 20, "earnings": -24,
                                                             "platform_fees": -6}

    def check():
        for range_ in service.RANGES:
            spent = service.fan_spending(fan, range_)
            assert (spent.by_type["calls"], spent.total) == (30, 30)
            assert [(c.creator_id, c.total) for c in spent.by_creator] == [(creator.id, 30)]
            assert [(f.user_id, f.total) for f in service.top_fans(creator, range_)] == [(fan.id, 24)]
            assert service.creator_earnings(creator, range_).by_source["calls"] == 24
        # One line per refund, not one per leg; the card refund is not spending.
        assert [(line.type, line.amount) for line in service.spending_lines(fan, "all")] == [
            ("refund", -30), ("refund", -30), ("calls", 30), ("calls", 30), ("calls", 30)]
        assert [(line.type, line.amount) for line in service.spending_lines(fan, "all", limit=1)] == [("refund", -30)]
        assert [m.calls for m in service.spending_by_month(fan)] == [30]

    read_twice(check)
    assert [(r[1], r[3]) for r in csv_rows(service.export_spending_csv(fan, "all"))] == [
        ("calls", "30")] * 3 + [("refund", "-30")] * 2
    refund_rows = [r for r in csv_rows(service.export_earnings_csv(creator, "all")) if ":refund:" in r[6]]
    assert [(r[2], r[4]) for r in refund_rows] == [(fan.display_name, "-24")] * 2
    assert ledger.verify() == []


def test_the_refund_pages_show_the_net_and_link_to_the_calls_receipts(ctx, clock, make_call, operator, browser_for):
    fan, creator, call_id = three_block_call(clock, make_call)
    refund(operator, call_id, [0, 2])
    html = get(browser_for(creator), "/dashboard?range=today")
    assert figure(html, "earned-calls") == 24
    assert table_rows(html, "call-revenue")[0][2:] == ["3 2 refunded", "24"]
    c = browser_for(fan)
    html = get(c, "/spending?range=today")
    assert figure(html, "spent-calls") == 30
    assert [row[2] for row in table_rows(html, "spending-lines")] == ["+30", "+30", "−30", "−30", "−30"]
    assert f'<a href="/calls/{call_id}">Receipt</a>' in html
    receipts = get(c, f"/calls/{call_id}")  # the refund lines' receipt: the call's receipts list both refunds
    assert receipts.count('class="receipt receipt-block-refunded"') == 2


# ---- payouts ----------------------------------------------------------------------------

def test_payouts_take_tokens_out_of_earnings_but_not_out_of_what_was_earned(ctx, clock, make_call, make_fan,
                                                                          make_creator, history):
    h = history(0)
    creator, fan = make_creator(), make_fan(balance=2000)
    tips.send_tip(fan, creator.id, 1000, "", None, f"t-{uuid.uuid4()}")
    three_block_call(clock, make_call, fan=fan, creator=creator)
    earnings = ledger.account_for(creator.id, "earnings")

    def figures():
        return [(service.creator_earnings(creator, r), service.earnings_by_day(creator, r),
                 service.top_fans(creator, r), service.call_revenue(creator, r),
                 "".join(service.export_earnings_csv(creator, r))) for r in service.RANGES]

    before = figures()
    assert before[-1][0].total == 800 + 72
    h.payout(creator, 300, "paid")        # earnings → in transit → paid out
    h.payout(creator, 100, "failed")      # out and back again
    h.payout(creator, 50, "requested")    # still in transit
    assert ledger.balance_of(earnings) == 872 - 350  # the account's real balance did move

    def check():
        assert figures() == before

    read_twice(check)
    assert "payout" not in "".join(service.export_earnings_csv(creator, "all"))
    assert ledger.verify() == []


# ---- card refunds and chargebacks -------------------------------------------------------

def test_card_refunds_and_chargebacks_are_not_spending_and_the_platform_shows_what_they_took(ctx, make_fan,
                                                                                             make_creator, history,
                                                                                             operator, browser_for):
    h = history(0)
    creator, fan = make_creator(), make_fan(balance=500)
    tips.send_tip(fan, creator.id, 100, "", None, f"t-{uuid.uuid4()}")  # 400 left
    spending = [(service.fan_spending(fan, r), service.spending_lines(fan, r),
                 "".join(service.export_spending_csv(fan, r))) for r in service.RANGES]
    platform = service.platform_overview(operator, "all")

    h.take_back(fan, 50)                                   # a card refund: 350 left
    won = h.take_back(fan, 100, dispute=True)              # a chargeback: 250 left ...
    h.dispute_won(fan, won)                                # ... won: 350 again
    h.take_back(fan, 390, dispute=True)                    # a chargeback the wallet can't cover: 40 owed
    assert ledger.owed_by(fan.id) == 40

    def check():
        assert [(service.fan_spending(fan, r), service.spending_lines(fan, r),
                 "".join(service.export_spending_csv(fan, r))) for r in service.RANGES] == spending
        now = service.platform_overview(operator, "all")
        assert now.tokens_sold == platform.tokens_sold                    # nothing bought meanwhile
        assert now.tokens_taken_back == platform.tokens_taken_back + 50 + 100 - 100 + 390
        assert now.tokens_outstanding == platform.tokens_outstanding - 400
        assert now.debt_outstanding == platform.debt_outstanding + 40
        assert now.fees_by_source == platform.fees_by_source

    read_twice(check)
    html = get(browser_for(operator), "/platform?range=all")
    now = service.platform_overview(operator, "all")
    assert figure(html, "tokens-taken-back") == now.tokens_taken_back
    assert figure(html, "debt-outstanding") == now.debt_outstanding
    assert ledger.verify() == []
