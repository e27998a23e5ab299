"""Rollups: incrementally maintained ones equal a rebuild from scratch and equal
direct sums of the entries under the watermark, also when runs overlap each
other and ledger writes (real threads, real PostgreSQL)."""
from __future__ import annotations

import threading
import uuid

from click.testing import CliRunner
from sqlalchemy import text

from app.dashboard import rollups
from app.extensions import db
from app.tips import service as tips

SNAPSHOT = {
    "rollup_daily": "SELECT account_id, day, transfer_kind, amount, entries, min_entry_id FROM rollup_daily",
    "rollup_total": "SELECT account_id, transfer_kind, amount, entries FROM rollup_total",
    "rollup_daily_pair": "SELECT account_id, day, counterparty_id, transfer_kind, amount FROM rollup_daily_pair",
    "rollup_pair_total": "SELECT account_id, counterparty_id, amount FROM rollup_pair_total",
    "rollup_pair_window": "SELECT account_id, span, counterparty_id, amount FROM rollup_pair_window",
    "rollup_daily_ref": "SELECT account_id, ref_type, ref_id, day, transfer_kind, amount, entries FROM rollup_daily_ref",
    "rollup_kind_daily": "SELECT day, account_kind, transfer_kind, amount, entries FROM rollup_kind_daily",
    "window_day": "SELECT window_day FROM rollup_state",
}


def snapshot() -> dict:
    db.session.rollback()
    return {name: sorted(tuple(r) for r in db.session.execute(text(sql))) for name, sql in SNAPSHOT.items()}


def direct_daily(w: int) -> list:
    """rollup_daily computed straight from the entries with id <= w."""
    return sorted(tuple(r) for r in db.session.execute(text("""
        SELECT e.account_id, (e.created_at AT TIME ZONE 'UTC')::date, t.kind, sum(e.amount), count(*), min(e.id)
          FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
         WHERE e.id <= :w GROUP BY 1, 2, 3"""), {"w": w}))


def direct_total(w: int) -> list:
    return sorted(tuple(r) for r in db.session.execute(text("""
        SELECT e.account_id, t.kind, sum(e.amount), count(*)
          FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
         WHERE e.id <= :w GROUP BY 1, 2"""), {"w": w}))


# Who an entry's money is with: on a fan's wallet or debt, the creator owning the
# transfer's earnings or escrow leg; on earnings, the one fan owning its wallet and debt
# legs (a block refund may repay debt only). Per entry (id, user).
_COUNTERPARTY = """
    SELECT e.id, CASE WHEN a.kind IN ('wallet', 'debt') THEN creator.user_id
                      WHEN a.kind = 'earnings' THEN fan.user_id END AS user_id
      FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
      LEFT JOIN (SELECT e2.transfer_id, min(a2.user_id) AS user_id FROM ledger_entries e2
                   JOIN ledger_accounts a2 ON a2.id = e2.account_id AND a2.kind IN ('earnings', 'escrow')
                  GROUP BY 1) creator ON creator.transfer_id = e.transfer_id
      LEFT JOIN (SELECT e2.transfer_id, min(a2.user_id) AS user_id FROM ledger_entries e2
                   JOIN ledger_accounts a2 ON a2.id = e2.account_id AND a2.kind IN ('wallet', 'debt')
                  GROUP BY 1 HAVING count(DISTINCT a2.user_id) = 1) fan ON fan.transfer_id = e.transfer_id"""


def direct_pair(w: int) -> list:
    """rollup_daily_pair straight from the entries with id <= w (`_COUNTERPARTY`)."""
    return sorted(tuple(r) for r in db.session.execute(text(f"""
        SELECT e.account_id, (e.created_at AT TIME ZONE 'UTC')::date, cp.user_id, t.kind, sum(e.amount)
          FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
          JOIN ({_COUNTERPARTY}) cp ON cp.id = e.id AND cp.user_id IS NOT NULL
         WHERE e.id <= :w GROUP BY 1, 2, 3, 4"""), {"w": w}))


def direct_window(w: int, day) -> list:
    """rollup_pair_window for window day `day`, straight from the entries with id <= w:
    per earnings account, fan (`_COUNTERPARTY`) and span, non-zero sums."""
    return sorted(tuple(r) for r in db.session.execute(text(f"""
        SELECT e.account_id, s.span, cp.user_id, sum(e.amount)
          FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'earnings'
          JOIN ({_COUNTERPARTY}) cp ON cp.id = e.id AND cp.user_id IS NOT NULL
          JOIN (VALUES (1), (7), (30)) AS s(span)
            ON (e.created_at AT TIME ZONE 'UTC')::date BETWEEN CAST(:d AS date) - s.span + 1 AND CAST(:d AS date)
         WHERE e.id <= :w GROUP BY 1, 2, 3 HAVING sum(e.amount) <> 0"""), {"w": w, "d": day}))


def direct_ref(w: int) -> list:
    """rollup_daily_ref from the entries with id <= w: earnings entries of a show's
    settlement (the stream row naming the transfer), of a call's blocks and their
    refunds (its billing events naming the transfer) and of tips sent during a
    stream or a call (tip row)."""
    return sorted(tuple(r) for r in db.session.execute(text("""
        SELECT e.account_id, ref.ref_type, ref.ref_id, (e.created_at AT TIME ZONE 'UTC')::date, t.kind,
               sum(e.amount), count(*)
          FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'earnings'
          JOIN ledger_transfers t ON t.id = e.transfer_id
          JOIN (SELECT settlement_transfer_id AS transfer_id, 'stream' AS ref_type, id AS ref_id FROM streams
                 WHERE settlement_transfer_id IS NOT NULL
                UNION ALL
                SELECT transfer_id, 'call', call_id FROM billing_events
                 WHERE type IN ('block_charged', 'block_refunded') AND transfer_id IS NOT NULL
                UNION ALL
                SELECT transfer_id, CASE WHEN stream_id IS NOT NULL THEN 'stream' ELSE 'call' END,
                       coalesce(stream_id, call_id) FROM tips WHERE coalesce(stream_id, call_id) IS NOT NULL) ref
            ON ref.transfer_id = e.transfer_id
         WHERE e.id <= :w GROUP BY 1, 2, 3, 4, 5"""), {"w": w}))


def assert_rollups_are_direct_sums(w: int) -> None:
    got = snapshot()
    assert got["rollup_daily"] == direct_daily(w)
    assert got["rollup_total"] == direct_total(w)
    assert got["rollup_kind_daily"] == direct_kind_daily(w)
    assert got["rollup_daily_pair"] == direct_pair(w)
    assert got["rollup_pair_window"] == direct_window(w, got["window_day"][0][0])
    assert got["rollup_daily_ref"] == direct_ref(w)


def direct_kind_daily(w: int) -> list:
    return sorted(tuple(r) for r in db.session.execute(text("""
        SELECT (e.created_at AT TIME ZONE 'UTC')::date, a.kind, t.kind, sum(e.amount), count(*)
          FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
          JOIN ledger_accounts a ON a.id = e.account_id
         WHERE e.id <= :w GROUP BY 1, 2, 3"""), {"w": w}))


def tip_storm(app, fans, creator, n):
    """`n` tips from each fan, each fan in its own thread."""
    def send(fan_id):
        with app.app_context():
            from app.auth.models import User
            fan = db.session.get(User, fan_id)
            for _ in range(n):
                tips.send_tip(fan, creator.id, 3, "", None, f"storm-{uuid.uuid4()}")
            db.session.remove()
    threads = [threading.Thread(target=send, args=(f.id,)) for f in fans]
    return threads


def run_in_thread(app, results, **kw):
    def target():
        with app.app_context():
            results.append(rollups.run(**kw))
            db.session.remove()
    return threading.Thread(target=target)


def test_overlapping_runs_during_ledger_writes_count_each_entry_once(app, ctx, make_fan, make_creator):
    creator = make_creator()
    fans = [make_fan(balance=1000) for _ in range(4)]
    results: list = []
    writers = tip_storm(app, fans, creator, 25)
    runners = [run_in_thread(app, results, chunk=7, wait_seconds=10) for _ in range(3)]
    for t in writers + runners:
        t.start()
    # More runs while the writers are still going.
    more = [run_in_thread(app, results, chunk=50, wait_seconds=10) for _ in range(2)]
    for t in more:
        t.start()
    for t in writers + runners + more:
        t.join(60)
    assert len(results) == 5
    # Catch up after the writers stopped, with two runs racing each other.
    final = [run_in_thread(app, results, wait_seconds=10) for _ in range(2)]
    for t in final:
        t.start()
    for t in final:
        t.join(60)
    db.session.rollback()
    w = rollups.watermark()
    assert w == db.session.scalar(text("SELECT max(id) FROM ledger_entries"))
    incremental = snapshot()
    assert_rollups_are_direct_sums(w)
    # The creator's earnings from the storm: every tip counted exactly once.
    earned = db.session.scalar(text(
        "SELECT sum(r.amount) FROM rollup_daily r JOIN ledger_accounts a ON a.id = r.account_id "
        "WHERE a.user_id = :c AND a.kind = 'earnings'"), {"c": creator.id})
    assert earned == 4 * 25 * (3 * 80 // 100)

    rebuilt = rollups.rebuild()
    assert rebuilt["deferred"] is False and rebuilt["watermark"] == w
    assert snapshot() == incremental


def test_rebuild_in_small_chunks_equals_incremental_and_a_second_run_adds_nothing(ctx, make_fan, make_creator):
    creator, fan = make_creator(), make_fan(balance=1000)
    for amount in (5, 7, 11):
        tips.send_tip(fan, creator.id, amount, "", None, f"k-{uuid.uuid4()}", confirmed=True)
    rollups.run()
    incremental = snapshot()
    assert rollups.run()["rolled"] == 0
    assert snapshot() == incremental
    rollups.rebuild(chunk=3)
    assert snapshot() == incremental


def test_a_run_waits_for_an_open_ledger_transaction_instead_of_skipping_its_entries(app, ctx, make_fan,
                                                                                    make_creator):
    """An entry drawn from the sequence before a run but committed after it must not
    fall under the watermark uncounted."""
    creator, fan = make_creator(), make_fan(balance=1000)
    rollups.run()
    from app import ledger
    with app.app_context():
        # An open transaction holding a fresh entry id (uncommitted tip-like transfer).
        wallet = ledger.account_for(fan.id, "wallet")
        legs = [ledger.Leg(wallet, -10), ledger.Leg(ledger.account_for(creator.id, "earnings"), 8),
                ledger.Leg(ledger.system_account("platform_fees"), 2)]
        ledger.transfer("tip", f"open-{uuid.uuid4()}", legs, {})
        # A later, committed entry from another session.
        done: list = []
        t = threading.Thread(target=lambda: done.append(_committed_tip(app, fan.id, creator.id)))
        t.start()
        t.join(30)
        result = rollups.run(wait_seconds=0.3)
        assert result["deferred"] is True  # the open transaction might still commit a lower id
        db.session.commit()
    db.session.rollback()
    result = rollups.run(wait_seconds=5)
    assert result["deferred"] is False
    w = result["watermark"]
    assert snapshot()["rollup_daily"] == direct_daily(w)
    assert_rollups_are_direct_sums(w)


def test_windows_moved_day_by_day_equal_windows_built_for_that_day(ctx, clock, history, make_fan, make_creator):
    """Runs on later days (1 day, 40 days on) and back again move the moving windows
    to exactly what a rebuild on that day builds, zero rows dropped; per-stream and
    per-call rollups equal the entries of each stream's / call's transfers."""
    from tests.dashboard.conftest import day_start, timedelta

    h = history(11)
    creator, fans = make_creator(), [make_fan(balance=5000) for _ in range(3)]
    midnight = day_start(clock.now)
    start = clock.now
    h.public_stream(creator, [(fans[0], 40), (fans[1], 30)])
    h.at(midnight - timedelta(days=1))
    h.show(creator, fans[:2], 25, live_tips=[(fans[1], 10)])
    h.at(midnight - timedelta(days=6, seconds=1))
    h.call(fans[2], creator, 3, tip=9)
    h.at(midnight - timedelta(days=29))
    h.tip(fans[2], creator, 70)
    h.at(midnight)
    for move in (timedelta(0), timedelta(days=1), timedelta(days=40), None):
        clock.at(start + move if move is not None else start)
        rollups.run(wait_seconds=10)
        db.session.rollback()
        w = rollups.watermark()
        assert snapshot()["window_day"] == [(rollups.today(),)]
        assert_rollups_are_direct_sums(w)
        incremental = snapshot()
        rollups.rebuild()
        assert snapshot() == incremental, move


def _committed_tip(app, fan_id, creator_id):
    with app.app_context():
        from app.auth.models import User
        tips.send_tip(db.session.get(User, fan_id), creator_id, 4, "", None, f"c-{uuid.uuid4()}")
        db.session.remove()
    return True


def test_cli_rebuild_and_run(app, ctx):
    runner = app.test_cli_runner()
    out = runner.invoke(args=["rollups", "rebuild"])
    assert out.exit_code == 0, out.output
    assert "rollups rebuilt" in out.output
    out = runner.invoke(args=["rollups", "run"])
    assert out.exit_code == 0 and "watermark" in out.output


def test_the_worker_runs_rollups_every_ten_seconds(app):
    from app.dashboard import cron
    from worker import cron_jobs
    with app.app_context():
        assert (cron.roll_up_ledger, 10) in cron_jobs()
        assert cron.roll_up_ledger()["deferred"] is False


_ = CliRunner


def test_refunds_payouts_and_card_reversals_roll_up_as_their_entries_and_read_the_same(ctx, clock, history,
                                                                                       make_fan, make_creator,
                                                                                       operator):
    """Block refunds (one repaying only a fan's debt, one split between debt and wallet,
    one to a wallet, one on a later day), payouts and card reversals: every rollup equals
    the direct sums of the entries, a rebuild equals the incremental runs, and every
    figure reads the same from the entries (tail) as from the rollups."""
    from app import ledger
    from app.dashboard import service
    from tests.dashboard.conftest import day_start, timedelta

    h = history(15)
    creator, fan, debtor = make_creator(), make_fan(balance=2000), make_fan(balance=100)
    midnight = day_start(clock.now)
    paid_call = h.call(fan, creator, 3, rate=40)               # 3 blocks of 20 tokens
    debt_call = h.call(debtor, creator, 3, rate=40)
    h.tip(fan, creator, 500)
    h.at(midnight - timedelta(days=2))
    h.take_back(debtor, 65)                                    # the wallet's 40, and 25 owed
    assert h.refund(debt_call, [0]) == [0]                     # debt only
    assert h.refund(paid_call, [2]) == [2]                     # wallet only
    h.payout(creator, 100, "paid")
    h.payout(creator, 30, "failed")
    h.at(midnight - timedelta(days=1))
    assert h.refund(debt_call, [1]) == [1]                     # 5 debt, 15 wallet
    h.payout(creator, 20, "requested")
    key = h.take_back(fan, 30, dispute=True)
    h.dispute_won(fan, key)
    h.at(midnight + timedelta(seconds=1))
    assert ledger.verify() == []

    def figures():
        out = []
        for range_ in service.RANGES:
            out.append((service.creator_earnings(creator, range_), service.earnings_by_day(creator, range_),
                        service.top_fans(creator, range_), service.call_revenue(creator, range_),
                        service.platform_overview(operator, range_).fees_by_source,
                        [(service.fan_spending(f, range_), service.spending_lines(f, range_)) for f in (fan, debtor)]))
        return out

    from_entries = figures()
    run = rollups.run(wait_seconds=10)
    assert run["deferred"] is False
    assert figures() == from_entries
    db.session.rollback()
    w = rollups.watermark()
    assert_rollups_are_direct_sums(w)
    incremental = snapshot()
    rollups.rebuild()
    assert snapshot() == incremental
    assert figures() == from_entries
    # The refunds' counterparties are in the pair rollups: the debtor (whose first refund
    # had no wallet leg) on the creator's earnings, the creator on the debtor's debt.
    earnings, debt = ledger.account_for(creator.id, "earnings"), ledger.account_for(debtor.id, "debt")
    pairs: dict = {}
    for a, _, cp, kind, amount in incremental["rollup_daily_pair"]:
        pairs[(a, cp, kind)] = pairs.get((a, cp, kind), 0) + amount
    assert pairs[(earnings.id, debtor.id, "call_refund")] == -16 * 2
    assert pairs[(debt.id, creator.id, "call_refund")] == 20 + 5


def _earned(creator) -> int:
    """The creator's earnings entries, summed straight from the ledger."""
    return db.session.scalar(text(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE a.user_id = :c AND a.kind = 'earnings'"), {"c": creator.id})


def _last_entry() -> int:
    return db.session.scalar(text("SELECT max(id) FROM ledger_entries"))


def test_a_dashboard_finding_more_than_the_live_limit_of_its_entries_above_the_watermark_rolls_up_first(
        ctx, make_fan, make_creator, browser_for, monkeypatch):
    """Up to LIVE_LIMIT of the creator's entries above W are read live; more, and the
    page rolls everything up before reading (W moves past them). Other accounts'
    backlog is not this page's reason to. The page's figures are exact throughout."""
    from tests.dashboard.test_pages import figure

    monkeypatch.setattr(rollups, "LIVE_LIMIT", 3)
    creator, other, fan = make_creator(), make_creator(), make_fan(balance=10_000)
    page = browser_for(creator)
    rollups.run()
    for amount in (10, 20, 30, 40):
        tips.send_tip(fan, other.id, amount, "", None, f"t-{uuid.uuid4()}", confirmed=True)
    for amount in (100, 200, 300):
        tips.send_tip(fan, creator.id, amount, "", None, f"t-{uuid.uuid4()}", confirmed=True)
    w = rollups.watermark()
    for range_ in ("30d", "all"):  # 7 entries above W, 3 of them the creator's: read live
        html = page.get(f"/dashboard?range={range_}").get_data(as_text=True)
        assert figure(html, "earned-total") == _earned(creator) == 480
    db.session.rollback()
    assert rollups.watermark() == w

    tips.send_tip(fan, creator.id, 400, "", None, f"t-{uuid.uuid4()}", confirmed=True)
    last = _last_entry()
    html = page.get("/dashboard?range=all").get_data(as_text=True)   # 4 of theirs: roll up first
    assert figure(html, "earned-total") == _earned(creator) == 800
    db.session.rollback()
    assert rollups.watermark() >= last
    assert_rollups_are_direct_sums(rollups.watermark())
    assert page.get("/api/creator/earnings?range=all").get_json()["total"] == 800


def test_a_catch_up_leaves_the_work_to_a_run_holding_the_lock_and_to_the_worker_after_a_deferral(
        app, ctx, make_fan, make_creator, monkeypatch):
    """catch_up never waits for the lock (a run holding it is doing that work) and,
    when an open writer keeps the bound back, gives up within CATCH_UP_WAIT and does
    not try again for CATCH_UP_BACKOFF seconds; the figures stay exact meanwhile."""
    from app.dashboard import service

    monkeypatch.setattr(rollups, "_backoff_until", 0.0)
    monkeypatch.setattr(rollups, "CATCH_UP_WAIT", 0.2)
    creator, fan = make_creator(), make_fan(balance=10_000)
    rollups.run()
    for amount in (10, 20, 30):
        tips.send_tip(fan, creator.id, amount, "", None, f"t-{uuid.uuid4()}", confirmed=True)
    earnings = db.session.scalar(text(
        "SELECT id FROM ledger_accounts WHERE user_id = :c AND kind = 'earnings'"), {"c": creator.id})
    w = rollups.watermark()
    with db.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": rollups.LOCK_KEY})
        other.commit()
        try:
            result = rollups.catch_up([earnings], limit=1)
            assert result["busy"] is True and result["rolled"] == 0
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": rollups.LOCK_KEY})
            other.commit()
        assert service.creator_earnings(creator, "all").total == _earned(creator) == 48
        db.session.rollback()
        assert rollups.watermark() == w

        other.execute(text("SELECT txid_current()"))  # an open writer: its transaction holds an xid
        result = rollups.catch_up([earnings], limit=1)
        assert result["deferred"] is True and result["rolled"] == 0
        assert rollups.catch_up([earnings], limit=1) is None  # backing off: left to the worker
        other.rollback()
    assert rollups.catch_up([earnings], limit=1) is None
    monkeypatch.setattr(rollups, "_backoff_until", 0.0)
    result = rollups.catch_up([earnings], limit=1)
    assert result["deferred"] is False and result["rolled"] > 0
    assert service.creator_earnings(creator, "all").total == _earned(creator) == 48


def test_a_run_with_max_chunks_stops_there_and_the_next_run_goes_on(ctx, make_fan, make_creator):
    """run(max_chunks=1) (a page's catch-up: one chunk of CATCH_UP_MAX entries) rolls
    one chunk; the rest is the next run's, and the rollups stay the entries' sums."""
    creator, fan = make_creator(), make_fan(balance=10_000)
    rollups.run()
    for amount in (10, 20, 30):
        tips.send_tip(fan, creator.id, amount, "", None, f"t-{uuid.uuid4()}", confirmed=True)
    w = rollups.watermark()
    first = rollups.run(chunk=4, max_chunks=1)
    assert first["rolled"] == 4 and first["watermark"] == w + 4
    assert_rollups_are_direct_sums(first["watermark"])
    rest = rollups.run(chunk=4)
    assert rest["watermark"] == _last_entry() and rest["rolled"] == _last_entry() - w - 4
    assert_rollups_are_direct_sums(rest["watermark"])
