"""Every dashboard figure equals direct SQL over the ledger entries, for a
randomized history (tips, tickets + settlement, refunds of a canceled show,
metered call blocks, refunds of call blocks — some days later —, payouts paid,
failed or in transit, card refunds and chargebacks won or not) spread over UTC
days with entries at 23:59:59 and 00:00:00 — before the rollup job has run,
after it, and with a tail of new entries above the watermark. Days are UTC days."""
from __future__ import annotations

import random
import uuid
from datetime import timedelta, timezone

import pytest
from sqlalchemy import text

from app import ledger
from app.dashboard import rollups, service
from app.extensions import db
from tests.dashboard import oracle
from tests.dashboard.conftest import day_start

pytestmark = pytest.mark.usefixtures("no_open_calls")


def check_months(creator, today):
    """earnings_by_month (the all-time chart) against the oracle's days grouped by UTC
    month: one point per month from the first earning month to today's, oldest first."""
    want = oracle.earnings(creator.id, "all", today)
    per_month = {}
    for day, figures in want["per_day"].items():
        month = per_month.setdefault(day.replace(day=1), {"tips": 0, "tickets": 0, "calls": 0})
        for source, amount in figures.items():
            month[source] += amount
    series = service.earnings_by_month(creator)
    got = {m.day: {"tips": m.tips, "tickets": m.tickets, "calls": m.calls} for m in series}
    assert series and series[0].day == min(per_month) and series[-1].day == today.replace(day=1)
    assert all(m.day.day == 1 for m in series) and [m.day for m in series] == sorted(got)
    assert len(series) == (today.year - series[0].day.year) * 12 + today.month - series[0].day.month + 1
    assert {m: f for m, f in got.items() if any(f.values())} == {m: f for m, f in per_month.items() if any(f.values())}
    assert sum(m.total for m in series) == want["total"]


def check_everything(creators, fans, operator, today):
    for c in creators:
        check_months(c, today)
    for range_ in service.RANGES:
        for c in creators:
            want = oracle.earnings(c.id, range_, today)
            got = service.creator_earnings(c, range_)
            assert (got.by_source, got.total, got.pending_escrow) == (want["by"], want["total"], want["pending"]), \
                (c.id, range_)
            series = service.earnings_by_day(c, range_)
            got_days = {d.day: {"tips": d.tips, "tickets": d.tickets, "calls": d.calls} for d in series}
            assert [d.day for d in series] == sorted(got_days)  # oldest first, one per day
            if range_ != "all":
                assert len(series) == {"today": 1, "7d": 7, "30d": 30}[range_]
                assert series[-1].day == today
            for day, figures in want["per_day"].items():
                assert got_days[day] == figures, (c.id, range_, day)
            assert sum(d.total for d in series) == want["total"]
            ranked = service.top_fans(c, range_, limit=1000)
            assert {f.user_id: f.total for f in ranked} == {k: v for k, v in want["fans"].items() if v}
            assert [f.total for f in ranked] == sorted((f.total for f in ranked), reverse=True)
            for limit in (1, 2, 3):  # the ranked head, ties broken by the lower id
                assert [(f.user_id, f.total) for f in service.top_fans(c, range_, limit=limit)] == \
                    oracle.top_fans(c.id, range_, today, limit), (c.id, range_, limit)
            assert [(s.stream_id, s.tickets, s.tips) for s in service.stream_revenue(c, range_, limit=1000)] == \
                oracle.stream_revenue(c.id, range_, today, 1000), (c.id, range_)
            assert [(s.stream_id, s.tickets, s.tips) for s in service.stream_revenue(c, range_, limit=2)] == \
                oracle.stream_revenue(c.id, range_, today, 2), (c.id, range_)
            assert [(k.call_id, k.blocks, k.refunded, k.total) for k in service.call_revenue(c, range_, limit=1000)] \
                == oracle.call_revenue(c.id, range_, today, 1000), (c.id, range_)
            assert [(k.call_id, k.blocks, k.refunded, k.total) for k in service.call_revenue(c, range_, limit=2)] == \
                oracle.call_revenue(c.id, range_, today, 2), (c.id, range_)
        for f in fans:
            want = oracle.spending(f.id, range_, today)
            got = service.fan_spending(f, range_)
            assert (got.by_type, got.total) == (want["by"], want["total"]), (f.id, range_)
            assert {c.creator_id: c.total for c in got.by_creator} == want["creators"]
            lines = service.spending_lines(f, range_, limit=500)
            newest_first = list(reversed(want["lines"]))
            assert [line.amount for line in lines] == [amount for _, _, amount, _, _ in newest_first]
            assert [line.receipt_url for line in lines] == [
                f"/calls/{meta['callId']}" if kind == "call_refund" else f"/wallet/receipts/{transfer_id}"
                for transfer_id, kind, _, _, meta in newest_first]
            assert [line.amount for line in service.spending_lines(f, range_, limit=3)] == \
                [amount for _, _, amount, _, _ in newest_first[:3]]
        want = oracle.platform(range_, today)
        got = service.platform_overview(operator, range_)
        assert got.fees_by_source == want["by"]
        assert (got.tokens_sold, got.tokens_taken_back, got.tokens_outstanding, got.debt_outstanding,
                got.escrow_held) == (want["sold"], want["taken_back"], want["outstanding"], want["owed"],
                                     want["escrow"])
        got_days = {d.day: {"tips": d.tips, "tickets": d.tickets, "calls": d.calls} for d in got.fees_by_day}
        for day, figures in want["per_day"].items():
            if range_ != "all" or day in got_days:
                assert got_days[day] == figures, (range_, day)


def months_spending(fan, today):
    """spending_by_month against the oracle's lines grouped by UTC month."""
    want = {}
    for _, _, amount, at, _ in oracle.spending(fan.id, "all", today)["lines"]:
        month = at.astimezone(timezone.utc).date().replace(day=1)
        want[month] = want.get(month, 0) + amount
    got = {m.month: m.total for m in service.spending_by_month(fan, months=12)}
    assert got == {m: t for m, t in want.items() if t}


def build_phase(h, rng, creators, fans, moments):
    # Tips during streams and calls come from a second generator, so `rng` draws the
    # same history as before they were added. They are >= 2 tokens: a 1-token tip
    # gives its creator 0 (no earnings leg), which the oracle cannot attribute.
    more = random.Random(str(rng.getstate()[1]))
    real = random.Random(f"real money {rng.getstate()[1]}")
    for moment in moments:
        for _ in range(rng.randint(1, 3)):
            h.tip(rng.choice(fans), rng.choice(creators), rng.randint(1, 500))
        what = rng.choice(["show", "cancel", "call", "call", "none"])
        if what == "show":
            creator = rng.choice(creators)
            holders = rng.sample(fans, rng.randint(1, len(fans)))
            h.show(creator, holders, rng.randint(1, 300),
                   live_tips=[(more.choice(holders), more.randint(2, 200)) for _ in range(more.randint(0, 2))])
        elif what == "cancel":
            h.show(rng.choice(creators), rng.sample(fans, 3), rng.randint(1, 300), cancel=True)
        elif what == "call":
            h.call(rng.choice(fans), rng.choice(creators), rng.randint(1, 3), tip=more.choice([0, 0, 9]))
        if more.random() < 0.5:
            h.public_stream(more.choice(creators), [(more.choice(fans), more.randint(2, 200))
                                                    for _ in range(more.randint(1, 3))])
        real_money(h, real, creators, fans)
        h.at(moment)


def real_money(h, rng, creators, fans):
    """Issue 15's moves, drawn from their own generator: a block refund of a call made
    now or on an earlier day, a payout (paid, failed or in transit) of a little of a
    creator's earnings, a card refund or chargeback (won or not) of a fan's purchase."""
    if h.call_ids and rng.random() < 0.6:
        call_id = rng.choice(h.call_ids)
        blocks = h.refundable(call_id)
        if blocks:
            h.refund(call_id, rng.choice([None, [rng.choice(blocks)]]))
    if rng.random() < 0.4:
        creator = rng.choice(creators)
        balance = ledger.balance_of(ledger.account_for(creator.id, "earnings")) if \
            ledger.account_for(creator.id, "earnings") else 0
        if balance >= 10:
            h.payout(creator, rng.randint(1, balance // 10), rng.choice(["paid", "failed", "requested"]))
    if rng.random() < 0.4:
        fan = rng.choice(fans)
        key = h.take_back(fan, rng.randint(1, 50), dispute=rng.random() < 0.5)
        if ":dispute:" in key and rng.random() < 0.5:
            h.dispute_won(fan, key)


@pytest.mark.parametrize("seed", [6, 20240229])
def test_every_figure_equals_direct_sql_before_and_after_rollups(ctx, clock, history, make_fan, make_creator, operator,
                                                                 seed):
    h = history(seed)
    rng = h.rng
    creators = [make_creator(name=f"Creator {i}") for i in range(3)]
    fans = [make_fan(balance=200_000) for _ in range(4)]
    now = clock.now
    today = now.astimezone(timezone.utc).date()
    midnight = day_start(now)

    def boundary(days_ago):
        """The last second of a UTC day and the first second of the next."""
        end = midnight - timedelta(days=days_ago)
        return [end - timedelta(seconds=1), end]

    first_transfer = h.mark
    phase1 = [midnight - timedelta(days=40, hours=3)] + boundary(29) + boundary(6) + boundary(2)
    rng.shuffle(phase1)
    build_phase(h, rng, creators, fans, phase1)
    # Money held for a show that has not happened yet: pending, not earned.
    h.show(creators[0], fans[:2], 77, start=False)
    h.at(midnight - timedelta(days=1, seconds=1))
    # A fan who owes: a card refund takes more than their wallet holds, then refunds of
    # their call's blocks repay the debt first (block 0: all of it; block 1, in phase 2:
    # the rest of the debt, and the wallet).
    debtor = make_fan(balance=100)
    debt_call = h.call(debtor, creators[1], 3, rate=40)        # 3 blocks of 20 tokens
    h.at(midnight - timedelta(days=3))
    h.take_back(debtor, 65)                                    # the wallet's 40, and 25 owed
    h.at(midnight - timedelta(days=2, hours=5))
    assert h.refund(debt_call, [0]) == [0]                     # 20 tokens, all repaying debt
    h.at(midnight - timedelta(days=2, seconds=1))
    assert ledger.owed_by(debtor.id) == 5
    everyone = fans + [debtor]
    months_spending(fans[0], today)
    months_spending(debtor, today)

    check_everything(creators, everyone, operator, today)      # nothing rolled up yet: all tail
    assert sum(service.creator_earnings(c, "all").total for c in creators) > 0
    assert {k for c in creators for k, v in service.creator_earnings(c, "all").by_source.items() if v} == {
        "tips", "tickets", "calls"}
    # ... and per stream / per call, so those comparisons are not zeros against zeros.
    assert any(s.tips for c in creators for s in service.stream_revenue(c, "all", limit=1000))
    assert any(s.tickets for c in creators for s in service.stream_revenue(c, "all", limit=1000))
    assert any(k.blocks for c in creators for k in service.call_revenue(c, "all", limit=1000))
    done = rollups.run(wait_seconds=10)
    assert done["deferred"] is False and done["rolled"] > 0
    check_everything(creators, everyone, operator, today)      # all rolled up

    assert h.refund(debt_call, [1]) == [1]                     # 5 repay the debt, 15 to the wallet
    h.at(now - timedelta(minutes=10))
    assert ledger.owed_by(debtor.id) == 0
    phase2 = boundary(0)[1:] + boundary(1) + boundary(30) + [now - timedelta(minutes=5)]
    build_phase(h, rng, creators, fans, phase2)
    assert db.session.scalar(text("SELECT count(*) FROM ledger_entries WHERE id > :w"),
                             {"w": rollups.watermark()}) > 0
    check_everything(creators, everyone, operator, today)      # rollups + a tail
    months_spending(fans[1], today)
    months_spending(debtor, today)
    rollups.run(wait_seconds=10)
    check_everything(creators, everyone, operator, today)
    months_spending(fans[2], today)
    # The history held every new kind of move, so none of the comparisons was vacuous.
    kinds = set(db.session.scalars(text("SELECT DISTINCT kind FROM ledger_transfers WHERE id > :t"),
                                   {"t": first_transfer}))
    assert {"call_refund", "payout", "payout_paid", "payout_return", "purchase_reversal",
            "purchase_restore"} <= kinds, kinds
    assert any(k.refunded for c in creators for k in service.call_revenue(c, "all", limit=1000))
    assert ledger.verify() == []


def test_a_day_with_no_earnings_is_a_zero_day_and_all_starts_at_the_first_earning(ctx, clock, history, make_fan,
                                                                                   make_creator):
    h = history(1)
    creator, fan = make_creator(), make_fan(balance=1000)
    midnight = day_start(clock.now)
    h.tip(fan, creator, 100)
    h.at(midnight - timedelta(days=3))
    h.tip(fan, creator, 50)
    h.at(midnight)
    series = service.earnings_by_day(creator, "all")
    assert [d.day for d in series] == [(midnight - timedelta(days=k)).date() for k in (3, 2, 1, 0)]
    assert [d.tips for d in series] == [80, 0, 0, 40]
    assert service.earnings_by_day(make_creator(), "all") == []
    assert service.earnings_by_month(make_creator()) == []
    assert [d.total for d in service.earnings_by_day(creator, "today")] == [40]


def window_day():
    return db.session.scalar(text("SELECT window_day FROM rollup_state WHERE id = 1"))


def test_top_fans_stay_exact_when_the_windows_lag_move_or_money_is_taken_back(ctx, clock, history, make_fan,
                                                                               make_creator):
    """Top fans for every range and length equal the entries' sums: with the windows
    rolled for today, with a tail that lifts a fan to the top, a day behind (the
    minute after midnight), after moving 1 and 40 days forward and back again, and
    after a fan's money is taken back (a negative tail, then a window row at zero)."""
    from app import ledger

    h = history(3)
    creator = make_creator()
    fans = [make_fan(balance=5000) for _ in range(5)]
    start = clock.now
    midnight = day_start(start)
    for fan, amount, moment in [
            (fans[0], 100, midnight + timedelta(seconds=1)),      # today
            (fans[1], 100, midnight - timedelta(seconds=1)),      # yesterday, ties fans[0] over 7 / 30 days
            (fans[2], 300, midnight - timedelta(days=6)),         # first day of the 7 days
            (fans[2], 7, midnight - timedelta(days=6, seconds=1)),  # last day before them
            (fans[3], 50, midnight - timedelta(days=29)),         # first day of the 30 days
            (fans[4], 1000, midnight - timedelta(days=30, seconds=1))]:  # all time only
        h.tip(fan, creator, amount)
        h.at(moment)

    def check(window_current: bool):
        today = rollups.today()
        assert (window_day() == today) is window_current
        for range_ in service.RANGES:
            for limit in (1, 2, 3, 10):
                got = [(f.user_id, f.total) for f in service.top_fans(creator, range_, limit=limit)]
                assert got == oracle.top_fans(creator.id, range_, today, limit), (range_, limit, today)

    rollups.run(wait_seconds=10)
    check(True)
    h.tip(fans[3], creator, 600)  # above the watermark: fans[3] leads today, 7 and 30 days
    h.at(clock.now - timedelta(minutes=1))
    check(True)
    assert service.top_fans(creator, "today", limit=1)[0].user_id == fans[3].id

    clock.advance(days=1)          # midnight passed, no run yet: the windows are a day behind
    check(False)
    rollups.run(wait_seconds=10)
    check(True)
    clock.advance(days=40)
    rollups.run(wait_seconds=10)
    check(True)
    clock.at(start)                # and back: the windows move backwards just as well
    rollups.run(wait_seconds=10)
    check(True)

    # Money taken back from the creator's earnings, as a call block's refund does (here
    # from a tip, so the amounts stay this test's): a negative tail, then a zero window row.
    earnings, wallet = ledger.account_for(creator.id, "earnings"), ledger.account_for(fans[0].id, "wallet")
    ledger.transfer("tip", f"reversal-{uuid.uuid4()}", [ledger.Leg(earnings, -80), ledger.Leg(wallet, 80)])
    db.session.commit()
    check(True)
    rollups.run(wait_seconds=10)
    check(True)
    assert not db.session.scalar(text("SELECT count(*) FROM rollup_pair_window WHERE amount = 0"))
    assert fans[0].id not in [f.user_id for f in service.top_fans(creator, "today", limit=10)]


def test_the_all_time_chart_is_per_month_from_the_first_earning_month_and_at_most_sixty(ctx, clock, history,
                                                                                      make_fan, make_creator):
    """Months are UTC months: the last second of a month and the first of the next fall
    in two bars; a history longer than MAX_MONTHS shows its last MAX_MONTHS months (the
    totals still count everything); the same before and after the rollup job."""
    from app.dashboard.ranges import MAX_MONTHS, add_months

    h = history(2)
    creator, fan = make_creator(), make_fan(balance=1000)
    this_month = day_start(clock.now).replace(day=1)
    h.tip(fan, creator, 100)
    h.at(this_month - timedelta(seconds=1))
    h.tip(fan, creator, 50)
    h.at(this_month)
    this = this_month.date()
    for _ in range(2):  # all tail, then all rolled up
        assert [(m.day, m.tips, m.total) for m in service.earnings_by_month(creator)] == \
            [(add_months(this, -1), 80, 80), (this, 40, 40)]
        rollups.run(wait_seconds=10)
    h.tip(fan, creator, 10)
    h.at(this_month.replace(year=this_month.year - 6))  # 72 months back
    for _ in range(2):
        series = service.earnings_by_month(creator)
        assert len(series) == MAX_MONTHS
        assert series[0].day == add_months(this, -(MAX_MONTHS - 1)) and series[-1].day == this
        assert [m.total for m in series if m.total] == [80, 40]
        assert service.creator_earnings(creator, "all").total == 128
        rollups.run(wait_seconds=10)
