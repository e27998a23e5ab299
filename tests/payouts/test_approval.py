"""Operator approval (PAYOUT_REQUIRES_APPROVAL=1): requested payouts wait on /platform;
approve → approved and queued; reject (with a reason) → rejected, tokens back;
deciding twice or a paid payout → 409 (DESIGN.md §11)."""
from __future__ import annotations

import re

import pytest

from app import ledger
from app.extensions import db
from app.payouts import cron, service
from app.payouts.jobs import pay_payout
from tests.clock import install_clock
from tests.conftest import csrf_from, fresh_client
from tests.helpers import assert_error
from tests.payouts.helpers import earnings_of, in_transit, payout_row, request, transfer_keys


@pytest.fixture()
def strict(make_app, clock):
    """The app with PAYOUT_REQUIRES_APPROVAL on, on the session app's clock."""
    application = make_app(PAYOUT_REQUIRES_APPROVAL=True)
    install_clock(application, clock)
    return application


@pytest.fixture()
def operator(ctx, make_fan):
    user = make_fan()
    user.is_operator = True
    db.session.commit()
    return user


def waiting_payout(strict, creator, amount=3000):
    with strict.app_context():
        return request(creator, amount).payout


def test_requested_payouts_wait_for_approval_then_are_sent(
        ctx, no_unsent_payouts, strict, payee, operator, api_headers):
    creator = payee(4000)
    payout = waiting_payout(strict, creator)
    with strict.app_context():
        assert pay_payout(payout.id) == "requested"  # the job (or sweep) won't send it yet
        assert payout.id not in service.unsent() and payout.id not in cron.sweep_payouts()
    assert payout_row(payout.id)["status"] == "requested"

    client = fresh_client(strict)
    resp = client.post(f"/api/platform/payouts/{payout.id}/approve", headers=api_headers(operator))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["payout"]["status"] == "approved"
    row = payout_row(payout.id)
    assert row["decided_by"] == operator.id and row["decided_at"] is not None
    with strict.app_context():
        assert service.unsent() == [payout.id]
        assert cron.sweep_payouts() == {payout.id: "paid"}
    assert payout_row(payout.id)["status"] == "paid"
    # Decided already, paid already: 409 either way.
    assert_error(client.post(f"/api/platform/payouts/{payout.id}/approve", headers=api_headers(operator)), 409,
                 "payout_already_decided")
    assert_error(client.post(f"/api/platform/payouts/{payout.id}/reject", json={"reason": "late"},
                             headers=api_headers(operator)), 409, "payout_already_decided")
    assert ledger.verify() == []


def test_a_rejected_payout_gives_the_tokens_back_with_the_reason(ctx, strict, payee, operator, api_headers):
    creator = payee(4000)
    payout = waiting_payout(strict, creator)
    transit = in_transit()
    assert earnings_of(creator.id) == 1000
    client = fresh_client(strict)
    resp = client.post(f"/api/platform/payouts/{payout.id}/reject", json={"reason": "  Unusual activity  "},
                       headers=api_headers(operator))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()["payout"]
    assert body["status"] == "rejected" and body["failureReason"] == "Unusual activity"
    assert earnings_of(creator.id) == 4000 and in_transit() == transit - 3000
    assert transfer_keys(f"payout:{payout.id}") == [f"payout:{payout.id}", f"payout:{payout.id}:return"]
    assert_error(client.post(f"/api/platform/payouts/{payout.id}/reject", json={"reason": "again"},
                             headers=api_headers(operator)), 409, "payout_already_decided")
    assert_error(client.post(f"/api/platform/payouts/{payout.id}/approve", headers=api_headers(operator)), 409)
    assert earnings_of(creator.id) == 4000
    with strict.app_context():
        assert pay_payout(payout.id) == "rejected"
    assert ledger.verify() == []


def test_without_approval_a_payout_the_worker_cleared_can_no_longer_be_rejected(
        ctx, payee, operator, api_headers, client, on_stripe, stripe_standin):
    """Cleared before any money is sent: once a transfer may exist at Stripe, nobody can
    hand the tokens back (Stripe down here: the payout stays approved, unsent)."""
    creator = payee(4000)
    payout = request(creator, 3000).payout
    stripe_standin.outage = True
    with on_stripe.app_context():
        assert pay_payout(payout.id) == "retry"
    assert payout_row(payout.id)["status"] == "approved"
    assert_error(client.post(f"/api/platform/payouts/{payout.id}/reject", json={"reason": "stop"},
                             headers=api_headers(operator)), 409, "payout_already_decided")
    assert earnings_of(creator.id) == 1000


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 256}, {"reason": 5},
                                  {"reason": ["no"]}, {"reason": None}, {"reason": "bad\x07bell"}])
def test_a_rejection_needs_a_reason(ctx, strict, payee, operator, api_headers, body):
    creator = payee(4000)
    payout = waiting_payout(strict, creator)
    resp = fresh_client(strict).post(f"/api/platform/payouts/{payout.id}/reject", json=body,
                                     headers=api_headers(operator))
    assert_error(resp, 422, field="reason")
    assert payout_row(payout.id)["status"] == "requested" and earnings_of(creator.id) == 1000


def test_only_operators_decide_and_unknown_payouts_are_404(ctx, strict, payee, operator, make_fan, api_headers):
    creator = payee(4000)
    payout = waiting_payout(strict, creator)
    client = fresh_client(strict)
    for user in (creator, make_fan()):
        for action, body in (("approve", None), ("reject", {"reason": "no"})):
            resp = client.post(f"/api/platform/payouts/{payout.id}/{action}", json=body, headers=api_headers(user))
            assert_error(resp, 403, "not_an_operator")
    assert_error(client.post("/api/platform/payouts/999999999/approve", headers=api_headers(operator)), 404,
                 "payout_not_found")
    assert_error(client.post("/api/platform/payouts/999999999/reject", json={"reason": "x"},
                             headers=api_headers(operator)), 404, "payout_not_found")
    assert_error(client.post(f"/api/platform/payouts/{payout.id}/reject", data="x", content_type="application/json",
                             headers=api_headers(operator)), 400, "invalid_json")
    assert payout_row(payout.id)["status"] == "requested"


# ---- the queue on /platform ---------------------------------------------------------------------


def logged_in(application, user) -> tuple:
    browser = fresh_client(application)
    resp = browser.post("/login", data={"email": user.email, "password": user.test_password,
                                        "csrf_token": csrf_from(browser, "/login")})
    assert resp.status_code == 303
    return browser, {"X-CSRFToken": csrf_from(browser, "/wallet"), "HX-Request": "true"}


def test_platform_loads_the_queue_and_an_operator_approves_and_rejects_there(ctx, strict, payee, operator):
    creator = payee(8000)
    first, second = waiting_payout(strict, creator, 3000), waiting_payout(strict, creator, 2000)
    browser, headers = logged_in(strict, operator)
    page = browser.get("/platform").get_data(as_text=True)
    assert 'hx-get="/platform/payouts" hx-trigger="load"' in page

    queue = browser.get("/platform/payouts", headers={"HX-Request": "true"})
    html = queue.get_data(as_text=True)
    assert queue.status_code == 200 and html.lstrip().startswith("<section id=\"payout-queue\"")
    assert f'id="queued-payout-{first.id}"' in html and f'id="queued-payout-{second.id}"' in html
    assert creator.display_name in html and "3,000 tokens ($30.00)" in html
    full = browser.get("/platform/payouts").get_data(as_text=True)  # a plain visit: the page around it
    assert "<h1>Payout approvals</h1>" in full and 'id="payout-queue"' in full

    resp = browser.post(f"/platform/payouts/{first.id}/approve", headers=headers)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and f"Payout #{first.id} approved" in html
    assert f'id="queued-payout-{first.id}"' not in html and f'id="queued-payout-{second.id}"' in html
    assert payout_row(first.id)["status"] == "approved"

    # No reason: the error sits next to that payout's reason field, nothing changed.
    resp = browser.post(f"/platform/payouts/{second.id}/reject", data={"reason": " "}, headers=headers)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert re.search(rf'id="reject-reason-{second.id}"[^>]*aria-invalid="true"', html, re.S)
    assert f'id="reject-reason-{second.id}-error"' in html
    assert payout_row(second.id)["status"] == "requested"

    resp = browser.post(f"/platform/payouts/{second.id}/reject", data={"reason": "Missing tax form"}, headers=headers)
    assert resp.status_code == 200 and "rejected" in resp.get_data(as_text=True)
    assert payout_row(second.id)["failure_reason"] == "Missing tax form"
    assert f'id="queued-payout-{second.id}"' not in resp.get_data(as_text=True)

    # Deciding again shows why, above the list.
    resp = browser.post(f"/platform/payouts/{first.id}/approve", headers=headers)
    assert resp.status_code == 409 and "already decided" in resp.get_data(as_text=True)
    assert earnings_of(creator.id) == 8000 - 3000
    assert ledger.verify() == []


def test_the_queue_is_for_operators(ctx, strict, payee, make_fan):
    creator = payee(4000)
    payout = waiting_payout(strict, creator)
    for user in (creator, make_fan()):
        browser, headers = logged_in(strict, user)
        assert browser.get("/platform/payouts").status_code == 403
        assert browser.post(f"/platform/payouts/{payout.id}/approve", headers=headers).status_code == 403
        assert browser.post(f"/platform/payouts/{payout.id}/reject", data={"reason": "x"},
                            headers=headers).status_code == 403
    assert fresh_client(strict).get("/platform/payouts").status_code in (302, 401)
    assert payout_row(payout.id)["status"] == "requested"
