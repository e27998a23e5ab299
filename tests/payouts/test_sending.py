"""The worker sends payouts (DESIGN.md §11): one Stripe transfer per payout, keyed by
the payout id; a refusal gives the tokens back; an outage changes nothing until the
sweep retries; a worker SIGKILLed between "transfer made" and "payout marked paid"
pays once on the retry. The real SDK against the stand-in."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app import embedded, ledger
from app.extensions import db
from app.payouts import cron, service
from app.payouts.jobs import pay_payout
from tests.conftest import fresh_client
from tests.helpers import run_together
from tests.payments import standin
from tests.payouts.helpers import (earnings_of, in_transit, paid_out, payout_row, request, signed_webhook,
                                   transfer_keys)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def stripe_payee(on_stripe, stripe_standin, make_creator, earn, clock):
    """stripe_payee(tokens=4000) → a creator with `tokens` available and a payout account
    set up through the stand-in (created by the app, enabled by `account.updated`)."""
    def _make(tokens: int = 4000):
        creator = make_creator()
        earn(creator, tokens)
        clock.advance(days=8)
        with on_stripe.app_context():
            service.start_onboarding(creator, refresh_url="http://x/r", return_url="http://x/d")
        account_id = db.session.get(service.PayoutAccount, creator.id).stripe_account_id
        resp = signed_webhook(fresh_client(on_stripe), stripe_standin.account_updated(account_id))
        assert resp.get_json()["outcome"] == "handled"
        db.session.rollback()
        return creator, account_id
    return _make


def send(on_stripe, payout_id: int) -> str:
    """Run the worker's job in the Stripe-provider app."""
    with on_stripe.app_context():
        return pay_payout(payout_id)


def test_the_worker_pays_once_with_the_payout_id_as_stripes_idempotency_key(
        ctx, on_stripe, stripe_standin, stripe_payee):
    creator, account_id = stripe_payee(4000)
    payout = request(creator, 3000).payout
    transit, paid = in_transit(), paid_out()

    assert send(on_stripe, payout.id) == "paid"
    (call,) = stripe_standin.calls("POST", "/v1/transfers")
    assert call.params == {"amount": "3000", "currency": "usd", "destination": account_id,
                           "metadata": {"payout_id": str(payout.id)}}
    assert call.idempotency_key == f"payout-{payout.id}"
    (made,) = stripe_standin.transfers.values()
    row = payout_row(payout.id)
    assert row["status"] == "paid" and row["stripe_transfer_id"] == made["id"] and row["paid_at"] is not None
    assert row["decided_at"] is not None and row["decided_by"] is None  # cleared by the worker itself
    assert transfer_keys(f"payout:{payout.id}") == [f"payout:{payout.id}", f"payout:{payout.id}:paid"]
    assert (in_transit(), paid_out()) == (transit - 3000, paid + 3000)
    assert earnings_of(creator.id) == 1000
    assert ledger.verify() == []

    # Run again (a second cron, a retried job): nothing more.
    assert send(on_stripe, payout.id) == "paid"
    with on_stripe.app_context():
        assert payout.id not in service.unsent()
    assert len(stripe_standin.calls("POST", "/v1/transfers")) == 1
    assert (in_transit(), paid_out()) == (transit - 3000, paid + 3000)


def test_a_refused_transfer_fails_the_payout_and_gives_the_tokens_back(
        ctx, on_stripe, stripe_standin, stripe_payee, api_headers):
    creator, account_id = stripe_payee(4000)
    payout = request(creator, 4000).payout
    stripe_standin.failing_destinations.add(account_id)
    transit = in_transit()

    assert send(on_stripe, payout.id) == "failed"
    row = payout_row(payout.id)
    assert row["status"] == "failed" and row["failed_at"] is not None and row["stripe_transfer_id"] is None
    assert "capabilities" in row["failure_reason"]
    assert stripe_standin.transfers == {}
    assert transfer_keys(f"payout:{payout.id}") == [f"payout:{payout.id}", f"payout:{payout.id}:return"]
    assert earnings_of(creator.id) == 4000 and in_transit() == transit - 4000
    with on_stripe.app_context():
        assert service.balance(creator).available == 4000  # back, and not held again
        assert payout.id not in service.unsent()
    assert ledger.verify() == []
    body = fresh_client(on_stripe).get("/api/payouts", headers=api_headers(creator)).get_json()
    assert body["payouts"][0]["status"] == "failed" and "capabilities" in body["payouts"][0]["failureReason"]

    assert send(on_stripe, payout.id) == "failed"  # again: nothing moves twice
    assert earnings_of(creator.id) == 4000 and len(stripe_standin.calls("POST", "/v1/transfers")) == 1


def test_stripe_down_leaves_the_payout_for_the_sweep_to_retry(
        ctx, no_unsent_payouts, on_stripe, stripe_standin, stripe_payee):
    creator, _ = stripe_payee(4000)
    payout = request(creator, 2000).payout
    transit = in_transit()
    stripe_standin.outage = True

    assert send(on_stripe, payout.id) == "retry"
    row = payout_row(payout.id)
    assert row["status"] == "approved" and row["stripe_transfer_id"] is None and row["failure_reason"] is None
    assert in_transit() == transit and earnings_of(creator.id) == 2000
    assert ledger.verify() == []
    with on_stripe.app_context():
        assert payout.id in service.unsent()
        assert cron.sweep_payouts() == {payout.id: "retry"}  # still down

    stripe_standin.outage = False
    with on_stripe.app_context():
        assert cron.sweep_payouts() == {payout.id: "paid"}
    assert payout_row(payout.id)["status"] == "paid"
    tries = stripe_standin.calls("POST", "/v1/transfers")
    assert len(tries) >= 3 and {t.idempotency_key for t in tries} == {f"payout-{payout.id}"}
    assert len(stripe_standin.transfers) == 1
    assert in_transit() == transit - 2000
    assert ledger.verify() == []


def test_the_sweep_sends_every_payout_whose_job_was_lost(
        ctx, no_unsent_payouts, on_stripe, stripe_standin, stripe_payee, monkeypatch):
    creator, _ = stripe_payee(9000)
    made = [request(creator, 3000).payout.id for _ in range(3)]  # queued; no worker runs here
    monkeypatch.setattr(service, "SWEEP_BATCH", 2)  # more payouts than one batch
    with on_stripe.app_context():
        assert service.unsent() == made[:2] and service.unsent(after=made[1]) == made[2:]
        assert cron.sweep_payouts() == {payout_id: "paid" for payout_id in made}
        assert service.unsent() == []
    assert len(stripe_standin.transfers) == 3
    assert ledger.verify() == []


def test_workers_sending_the_same_payout_at_once_make_one_transfer(ctx, on_stripe, stripe_standin, stripe_payee):
    creator, _ = stripe_payee(4000)
    payout = request(creator, 4000).payout
    payout_id = payout.id
    outcomes = run_together(on_stripe, 6, lambda i: pay_payout(payout_id))
    assert outcomes.count("paid") >= 1 and set(outcomes) <= {"paid", "busy"}, outcomes
    assert len(stripe_standin.transfers) == 1
    assert transfer_keys(f"payout:{payout.id}:paid") == [f"payout:{payout.id}:paid"]
    assert payout_row(payout.id)["status"] == "paid"
    assert ledger.verify() == []


def test_the_demo_provider_pays_at_once(ctx, payee):
    creator = payee(4000)
    payout = request(creator, 2000).payout
    assert pay_payout(payout.id) == "paid"
    row = payout_row(payout.id)
    assert row["status"] == "paid" and row["stripe_transfer_id"] == f"tr_demo_{payout.id}"
    assert ledger.verify() == []


# ---- killed between "transfer made at Stripe" and "payout marked paid" ---------------------------

CHILD = """
import sys
from app import create_app
from app.payouts.jobs import pay_payout
app = create_app()
with app.app_context():
    print("sent", pay_payout(int(sys.argv[1])), flush=True)
"""


def test_a_worker_killed_after_stripe_made_the_transfer_pays_once_on_the_retry(
        ctx, on_stripe, stripe_standin, stripe_payee, services, tmp_path):
    creator, account_id = stripe_payee(4000)
    payout = request(creator, 3000).payout
    transit, paid = in_transit(), paid_out()
    env = embedded.env_with_services(services[0], services[1])
    env.pop("FLASK_DEBUG", None)
    env.update(APP_ENV="test", SECRET_KEY="payouts-test-secret", PYTHONUNBUFFERED="1",
               INSTANCE_DIR=str(tmp_path / "instance"), PAYMENTS_PROVIDER="stripe",
               STRIPE_API_BASE=stripe_standin.url, STRIPE_SECRET_KEY=standin.API_KEY,
               STRIPE_WEBHOOK_SECRET=standin.WEBHOOK_SECRET)
    stripe_standin.hold_transfers = threading.Event()
    log_path = tmp_path / "worker.log"
    child = None
    try:
        with open(log_path, "wb") as log:
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(payout.id)], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        assert stripe_standin.transfer_made.wait(60), log_path.read_text()
        assert child.poll() is None, log_path.read_text()
        os.killpg(child.pid, signal.SIGKILL)  # the transfer exists at Stripe; the worker never heard back
        assert child.wait(10) == -signal.SIGKILL
    finally:
        stripe_standin.hold_transfers.set()
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    stripe_standin.hold_transfers = None

    (made,) = stripe_standin.transfers.values()
    assert made["amount"] == 3000 and made["destination"] == account_id
    row = payout_row(payout.id)
    assert row["status"] == "approved" and row["stripe_transfer_id"] is None  # cleared, not marked paid
    assert (in_transit(), paid_out()) == (transit, paid)
    assert ledger.verify() == []
    with on_stripe.app_context():
        assert payout.id in service.unsent()

    # The retry (the sweep, or the job again) asks with the same key and gets the same transfer.
    assert send(on_stripe, payout.id) == "paid"
    tries = stripe_standin.calls("POST", "/v1/transfers")
    assert [t.idempotency_key for t in tries] == [f"payout-{payout.id}"] * 2
    assert tries[0].params == tries[1].params
    assert len(stripe_standin.transfers) == 1
    row = payout_row(payout.id)
    assert row["status"] == "paid" and row["stripe_transfer_id"] == made["id"]
    assert transfer_keys(f"payout:{payout.id}:paid") == [f"payout:{payout.id}:paid"]
    assert (in_transit(), paid_out()) == (transit - 3000, paid + 3000)
    assert earnings_of(creator.id) == 1000
    assert ledger.verify() == []


def test_the_queued_job_runs_in_a_real_rq_worker_and_the_sweep_is_a_cron_job(ctx, services, payee):
    from redis import Redis
    from rq import Queue, SimpleWorker
    from rq.job import Job

    from app import jobs
    from worker import cron_jobs
    assert (cron.sweep_payouts, cron.PAYOUT_SWEEP_SECONDS) in cron_jobs()
    creator = payee(4000)
    queue = Queue(jobs.queue_name(), connection=Redis.from_url(services[1]))
    before = set(queue.job_ids)
    payout_id = request(creator, 2000).payout.id  # the job's app context releases this session's rows
    (job_id,) = [j for j in queue.job_ids if j not in before]
    job = Job.fetch(job_id, connection=queue.connection)
    assert job.func_name == "app.payouts.jobs.pay_payout" and tuple(job.args) == (payout_id,)
    assert payout_row(payout_id)["status"] == "requested"  # queued, not run inline

    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.get_status() == "finished" and job.return_value() == "paid"
    assert payout_row(payout_id)["status"] == "paid"
    assert ledger.verify() == []
