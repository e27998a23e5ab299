"""POST /api/payouts: the minimum, what is available, a ready account, creators only,
idempotency, and concurrency against real PostgreSQL (DESIGN.md §11)."""
from __future__ import annotations

import uuid

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from app import jobs, ledger
from app.errors import InsufficientFunds
from app.extensions import db
from app.payouts import service
from app.payouts.models import PayoutAccount
from tests.conftest import fresh_client
from tests.helpers import assert_error, run_together
from tests.payouts.helpers import date_latest_earning, earnings_of, fresh_user, in_transit, payout_row, payouts_of, transfer_keys


def post(client, headers, amount, key=None):
    return client.post("/api/payouts", json={"amountTokens": amount},
                       headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())})


@pytest.fixture()
def queued(services):
    """queued() → ids of the payouts whose `pay_payout` job was queued since the fixture started."""
    queue = Queue(jobs.queue_name(), connection=Redis.from_url(services[1]))
    before = set(queue.job_ids)

    def _queued() -> list[int]:
        fresh = Job.fetch_many([j for j in queue.job_ids if j not in before], connection=queue.connection)
        return [job.args[0] for job in fresh if job is not None and job.func_name == "app.payouts.jobs.pay_payout"]
    return _queued


def test_a_payout_moves_the_tokens_to_in_transit_at_once_and_queues_the_transfer(
        client, ctx, payee, api_headers, queued):
    creator = payee(4000)
    transit_before = in_transit()
    resp = post(client, api_headers(creator), 2500)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    payout = resp.get_json()["payout"]
    assert payout["amountTokens"] == 2500 and payout["amountCents"] == 2500 and payout["currency"] == "usd"
    assert payout["status"] == "requested" and "paidAt" not in payout and "failureReason" not in payout
    assert earnings_of(creator.id) == 1500
    assert in_transit() == transit_before + 2500
    assert transfer_keys(f"payout:{payout['id']}") == [f"payout:{payout['id']}"]
    row = payout_row(payout["id"])
    assert row["stripe_account_id"] == db.session.get(PayoutAccount, creator.id).stripe_account_id
    assert queued() == [payout["id"]]
    assert ledger.verify() == []


def test_a_replay_returns_the_same_payout_and_moves_nothing(client, ctx, payee, api_headers, queued):
    creator = payee(8000)
    headers = api_headers(creator)
    key = str(uuid.uuid4())
    first = post(client, headers, 3000, key)
    again = post(client, headers, 3000, key)
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert earnings_of(creator.id) == 5000 and len(payouts_of(creator.id)) == 1
    assert queued() == [first.get_json()["payout"]["id"]]
    assert_error(post(client, headers, 4000, key), 409, "idempotency_key_reused")
    assert earnings_of(creator.id) == 5000 and len(payouts_of(creator.id)) == 1


@pytest.mark.parametrize("amount", [1999, 0, -1, 2000.5, "2000", True, None, 10**30, [2000], {"n": 2000}])
def test_an_amount_below_the_minimum_or_not_a_whole_number_is_422(client, ctx, payee, api_headers, amount):
    creator = payee(4000)
    assert_error(post(client, api_headers(creator), amount), 422, field="amountTokens")
    assert earnings_of(creator.id) == 4000 and payouts_of(creator.id) == []


def test_more_than_available_is_402_with_the_shortfall(client, ctx, payee, earn, api_headers, clock):
    creator = payee(2400)
    earn(creator, 4000)
    date_latest_earning(creator.id, clock.now)  # earned just now: held
    body = assert_error(post(client, api_headers(creator), 3000), 402, "insufficient_funds")
    assert body["required"] == 600
    assert "2,400" in body["error"]
    assert earnings_of(creator.id) == 6400 and payouts_of(creator.id) == []
    # The refused key left nothing behind: it works once the amount fits.
    assert post(client, api_headers(creator), 2400).status_code == 201


def test_no_ready_account_is_409(client, ctx, payee, api_headers):
    creator = payee(4000, ready=False)
    headers = api_headers(creator)
    assert_error(post(client, headers, 2000), 409, "payout_account_not_ready")
    db.session.add(PayoutAccount(user_id=creator.id, stripe_account_id=f"acct_{uuid.uuid4().hex[:10]}"))
    db.session.commit()
    assert_error(post(client, headers, 2000), 409, "payout_account_not_ready")  # pending: not enabled yet
    assert earnings_of(creator.id) == 4000 and payouts_of(creator.id) == []


def test_fans_cannot_request_payouts(client, ctx, make_fan, api_headers):
    fan = make_fan(balance=5000)
    headers = api_headers(fan)
    assert_error(post(client, headers, 2000), 403, "not_a_creator")
    assert_error(client.get("/api/payouts", headers=headers), 403, "not_a_creator")
    assert payouts_of(fan.id) == []


def test_bad_requests_are_4xx_and_move_nothing(client, ctx, payee, api_headers):
    creator = payee(4000)
    headers = api_headers(creator)
    assert_error(client.post("/api/payouts", json={"amountTokens": 2000}, headers=headers), 400,
                 "idempotency_key_required")
    assert_error(client.post("/api/payouts", data="nope", content_type="application/json",
                             headers={**headers, "Idempotency-Key": "k"}), 400, "invalid_json")
    assert_error(client.post("/api/payouts", json=[2000], headers={**headers, "Idempotency-Key": "k"}), 400)
    assert_error(post(client, headers, 2000, key="x" * 300), 400, "invalid_idempotency_key")
    assert_error(client.post("/api/payouts", json={"amountTokens": 2000}), 401)
    assert earnings_of(creator.id) == 4000 and payouts_of(creator.id) == []


def test_with_approval_required_the_payout_waits_for_an_operator(ctx, payee, make_app, queued, api_headers, clock):
    from tests.clock import install_clock
    creator = payee(4000)
    strict = make_app(PAYOUT_REQUIRES_APPROVAL=True)
    install_clock(strict, clock)
    resp = post(fresh_client(strict), api_headers(creator), 2000)
    assert resp.status_code == 201
    assert resp.get_json()["payout"]["status"] == "requested"
    assert queued() == []
    assert earnings_of(creator.id) == 2000


def test_ten_concurrent_requests_never_take_more_than_is_available(app, ctx, payee, earn, clock):
    creator = payee(10_000)
    earn(creator, 8000)
    date_latest_earning(creator.id, clock.now)  # held: the ledger alone would let payouts take it
    amounts = [3000, 2000, 2500, 4000, 2000, 3500, 2200, 2000, 5000, 2600]
    creator_id = creator.id
    results = run_together(app, 10, lambda i: service.request_payout(fresh_user(creator_id), amounts[i],
                                                                      f"race-{uuid.uuid4()}"))
    granted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, InsufficientFunds) for r in refused), refused
    taken = sum(r.payout.amount_tokens for r in granted)
    assert granted and refused and taken <= 10_000
    assert earnings_of(creator.id) == 18_000 - taken
    assert sum(p["amount_tokens"] for p in payouts_of(creator.id)) == taken
    # Each refusal was right: it asked for more than was left then, which is at least what is left now.
    left = 10_000 - taken
    assert all(amounts[i] > left for i, r in enumerate(results) if isinstance(r, Exception))
    assert ledger.verify() == []


def test_a_payout_racing_a_real_chargeback_of_the_tips_it_pays_out_leaves_the_books_verified(
        app, ctx, make_fan, make_creator, clock):
    """The fan whose purchase paid the creator's tips disputes it (`charge.dispute.created`,
    as the webhook applies it) while the creator takes a payout: both go through (the
    chargeback takes the fan's tokens back — here all debt, the wallet was spent — and
    never the creator's earnings), and the books verify after every round."""
    from tests.payouts.helpers import make_ready
    from tests.wallet.reversal_helpers import dispute_now, owed, paid_purchase, spend
    for _ in range(4):
        fan, creator = make_fan(), make_creator()
        purchase = paid_purchase(fan, 5000, provider="demo")
        spend(fan, creator, 5000)  # the creator earns 4,000
        make_ready(creator)
        clock.advance(days=8)

        def act(i, creator_id=creator.id, purchase=purchase):
            if i == 0:
                return service.request_payout(fresh_user(creator_id), 3000, f"race-{uuid.uuid4()}").payout.status
            dispute_now(purchase, f"dp_{uuid.uuid4().hex[:12]}")
            return "disputed"
        results = run_together(app, 2, act)
        assert results[1] == "disputed" and results[0] in ("requested", "approved", "paid"), results
        assert owed(fan.id) == 5000 and earnings_of(creator.id) == 1000
        assert ledger.verify() == []


def test_a_payout_racing_a_chargeback_leaves_the_books_verified(app, ctx, payee):
    """A refund-style debit of the creator's earnings (a call refund takes the same
    lock) racing a payout: together they ask for more than there is, so one of
    them is refused, and the books balance either way."""
    outcomes = set()
    for _ in range(6):
        creator_id = payee(4000).id
        earnings = ledger.account_for(creator_id, "earnings")

        def act(i, creator_id=creator_id, earnings=earnings):
            if i == 0:
                return service.request_payout(fresh_user(creator_id), 3000, f"race-{uuid.uuid4()}")
            ledger.lock_account(earnings)
            ledger.transfer(ledger.TransferKind.CALL_REFUND, f"test-chargeback:{uuid.uuid4()}",
                            [ledger.Leg(earnings, -2000), ledger.Leg(ledger.system_account("platform_fees"), 2000)])
            db.session.commit()
            return "clawed back"
        payout, clawback = run_together(app, 2, act)
        assert isinstance(payout, InsufficientFunds) or isinstance(clawback, InsufficientFunds), (payout, clawback)
        outcomes.add("payout refused" if isinstance(payout, InsufficientFunds) else "chargeback refused")
        left = earnings_of(creator_id)
        assert left == (2000 if isinstance(payout, InsufficientFunds) else 1000)
        assert ledger.verify() == []
    assert outcomes  # (which one wins is up to the scheduler)
