"""Refunds and chargebacks arriving as Stripe webhooks (DESIGN.md §11): what they
take back, the debt they leave, and that late, repeated, out-of-order and racing
events never take back more than the purchase."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.ledger.verify import verify
from app.wallet.models import Purchase
from tests.conftest import fresh_client
from tests.helpers import run_together
from tests.wallet.reversal_helpers import fresh, owed, paid_purchase, post_event, spend, wallet_of


@pytest.fixture()
def stripe(stripe_app, stripe_standin):
    """(app context pushed, a client of the Stripe app, the stand-in)."""
    with stripe_app.app_context():
        yield fresh_client(stripe_app), stripe_standin
        db.session.remove()


def deliver(client, event) -> dict:
    resp = post_event(client, event)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def state(purchase_id: int) -> tuple:
    p = fresh(purchase_id)
    return p.status, p.refunded_tokens, p.disputed_tokens


# ---- refunds ----------------------------------------------------------------------------

def test_a_full_refund_takes_every_token_back(stripe, make_fan):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    assert deliver(client, standin.charge_refunded(purchase.payment_intent, 100))["outcome"] == "refunded"
    assert state(purchase.id) == ("refunded", 100, 0)
    assert wallet_of(fan.id) == 0 and owed(fan.id) == 0
    assert verify() == []


def test_partial_refunds_are_cumulative_floored_and_never_applied_twice(stripe, make_fan):
    """10 tokens for 70 cents: 20 cents back is floor(10 × 20 / 70) = 2 tokens; 50 cents
    back in all is 7; a repeat of 50 or a late 20 changes nothing; 70 is all 10."""
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 10, 70, standin=standin)
    deliver(client, standin.charge_refunded(purchase.payment_intent, 20))
    assert state(purchase.id) == ("refunded", 2, 0) and wallet_of(fan.id) == 8
    deliver(client, standin.charge_refunded(purchase.payment_intent, 50))
    assert state(purchase.id) == ("refunded", 7, 0) and wallet_of(fan.id) == 3
    for late in (50, 20, 0):
        answer = deliver(client, standin.charge_refunded(purchase.payment_intent, late))
        assert answer["outcome"] == "nothing new to refund"
        assert state(purchase.id) == ("refunded", 7, 0) and wallet_of(fan.id) == 3
    deliver(client, standin.charge_refunded(purchase.payment_intent, 70))
    assert state(purchase.id) == ("refunded", 10, 0) and wallet_of(fan.id) == 0
    assert verify() == []


def test_a_refund_too_small_for_a_token_takes_nothing(stripe, make_fan):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 10, 70, standin=standin)
    deliver(client, standin.charge_refunded(purchase.payment_intent, 6))  # 6 / 7 of a token
    assert state(purchase.id) == ("completed", 0, 0) and wallet_of(fan.id) == 10
    assert verify() == []


def test_the_same_event_delivered_twice_is_handled_once(stripe, make_fan):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    event = standin.charge_refunded(purchase.payment_intent, 40)
    deliver(client, event)
    assert deliver(client, event) == {"received": True, "duplicate": True}
    assert state(purchase.id) == ("refunded", 40, 0) and wallet_of(fan.id) == 60
    assert verify() == []


def test_a_refund_of_spent_tokens_becomes_debt(stripe, make_fan, make_creator):
    client, standin = stripe
    fan, creator = make_fan(), make_creator()
    purchase = paid_purchase(fan, 100, standin=standin)
    spend(fan, creator, 70)
    deliver(client, standin.charge_refunded(purchase.payment_intent, 100))
    assert wallet_of(fan.id) == 0 and owed(fan.id) == 70
    assert state(purchase.id) == ("refunded", 100, 0)
    assert verify() == []


# ---- disputes ---------------------------------------------------------------------------

def test_a_dispute_takes_back_everything_and_winning_it_gives_it_back_debt_first(stripe, make_fan, make_creator):
    client, standin = stripe
    fan, creator = make_fan(), make_creator()
    purchase = paid_purchase(fan, 100, standin=standin)
    spend(fan, creator, 30)
    opened = standin.dispute(purchase.payment_intent, dispute_id="dp_won")
    assert deliver(client, opened)["outcome"] == "disputed"
    assert state(purchase.id) == ("disputed", 0, 100)
    assert wallet_of(fan.id) == 0 and owed(fan.id) == 30
    assert verify() == []

    won = standin.dispute(purchase.payment_intent, "charge.dispute.closed", "won", dispute_id="dp_won")
    assert deliver(client, won)["outcome"] == "dispute won: given back"
    assert state(purchase.id) == ("completed", 0, 0)
    assert owed(fan.id) == 0 and wallet_of(fan.id) == 70  # 30 repaid the debt, 70 back in the wallet
    # The same close told again (another event id) gives nothing more.
    deliver(client, standin.dispute(purchase.payment_intent, "charge.dispute.closed", "won", dispute_id="dp_won"))
    assert wallet_of(fan.id) == 70
    assert verify() == []


def test_a_lost_dispute_keeps_the_tokens_taken(stripe, make_fan):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    deliver(client, standin.dispute(purchase.payment_intent, dispute_id="dp_lost"))
    lost = standin.dispute(purchase.payment_intent, "charge.dispute.closed", "lost", dispute_id="dp_lost")
    deliver(client, lost)
    assert state(purchase.id) == ("disputed", 0, 100) and wallet_of(fan.id) == 0
    assert verify() == []


def test_a_dispute_closed_without_ever_opening_changes_nothing(stripe, make_fan):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    won = standin.dispute(purchase.payment_intent, "charge.dispute.closed", "won", dispute_id="dp_never")
    assert deliver(client, won)["outcome"] == "no dispute to give back"
    assert state(purchase.id) == ("completed", 0, 0) and wallet_of(fan.id) == 100
    assert verify() == []


def test_a_dispute_created_twice_takes_back_once(stripe, make_fan):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, 100, standin=standin)
    deliver(client, standin.charge_refunded(purchase.payment_intent, 25))
    for _ in range(2):
        deliver(client, standin.dispute(purchase.payment_intent, dispute_id="dp_twice"))
    assert state(purchase.id) == ("disputed", 25, 75) and wallet_of(fan.id) == 0
    assert verify() == []


@pytest.mark.parametrize("order", ["refund first", "dispute first"])
def test_refund_and_dispute_in_either_order_take_back_at_most_the_purchase(stripe, make_fan, order):
    """A 40-token refund and a dispute, whichever arrives first: 100 tokens taken back in
    all; once the dispute is won the fan holds the 60 not refunded."""
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    refund = standin.charge_refunded(purchase.payment_intent, 40)
    dispute = standin.dispute(purchase.payment_intent, dispute_id=f"dp_{order[0]}")
    for event in ([refund, dispute] if order == "refund first" else [dispute, refund]):
        deliver(client, event)
    assert state(purchase.id) == ("disputed", 40, 60) and wallet_of(fan.id) == 0
    assert verify() == []
    deliver(client, standin.dispute(purchase.payment_intent, "charge.dispute.closed", "won",
                                    dispute_id=f"dp_{order[0]}"))
    assert state(purchase.id) == ("refunded", 40, 0) and wallet_of(fan.id) == 60
    assert verify() == []


def test_a_refund_and_a_dispute_racing_take_back_at_most_the_purchase(stripe, stripe_app, make_fan):
    """Real threads deliver a partial refund, a full refund and a dispute of each purchase at
    once, twice over (40 webhooks for 4 purchases): each purchase gives back exactly its
    tokens, once, however the deliveries interleave."""
    client, standin = stripe
    fans = [make_fan() for _ in range(4)]
    purchases = [paid_purchase(fan, 100, standin=standin) for fan in fans]
    events = []
    for p in purchases:
        events += [standin.charge_refunded(p.payment_intent, 30), standin.charge_refunded(p.payment_intent, 100),
                   standin.dispute(p.payment_intent, dispute_id=f"dp_race_{p.id}")]
    deliveries = [event for event in events for _ in range(2)]
    answers = run_together(stripe_app, len(deliveries),
                           lambda i: post_event(fresh_client(stripe_app), deliveries[i]).status_code)
    assert answers == [200] * len(deliveries)
    for fan, p in zip(fans, purchases, strict=True):
        status, refunded, disputed = state(p.id)
        assert (refunded, disputed) == (100, 0)  # the full refund counts, whatever the dispute held
        assert status == "refunded" and wallet_of(fan.id) == 0 and owed(fan.id) == 0
    assert verify() == []


# ---- what is refused -------------------------------------------------------------------

def test_events_for_an_unknown_or_pending_purchase_are_refused_and_change_nothing(stripe, make_fan):
    client, standin = stripe
    fan = make_fan()
    pending = Purchase(user_id=fan.id, amount_tokens=50, amount_cents=50, provider="stripe",
                       payment_intent="pi_pending")
    db.session.add(pending)
    db.session.commit()
    standin.charges["pi_pending"] = {"id": "ch_pending", "object": "charge", "payment_intent": "pi_pending",
                                     "amount": 50, "amount_refunded": 0, "currency": "usd"}
    standin.charges["pi_nobody"] = {"id": "ch_nobody", "object": "charge", "payment_intent": "pi_nobody",
                                    "amount": 50, "amount_refunded": 0, "currency": "usd"}
    cases = [(standin.charge_refunded("pi_nobody", 50), "unknown_purchase"),
             (standin.dispute("pi_nobody"), "unknown_purchase"),
             (standin.charge_refunded("pi_pending", 50), "not_refundable"),
             (standin.dispute("pi_pending"), "not_refundable"),
             (standin.dispute("pi_pending", "charge.dispute.closed", "won"), "not_refundable")]
    for event, code in cases:
        assert deliver(client, event) == {"received": True, "outcome": "refused", "code": code}
    assert state(pending.id) == ("pending", 0, 0) and wallet_of(fan.id) == 0
    assert verify() == []


BAD_CHARGES = [
    {"payment_intent": None}, {"payment_intent": 42}, {"payment_intent": ["pi"]}, {"payment_intent": "x" * 500},
    {"payment_intent": "pi with spaces"}, {"amount": "100"}, {"amount": 100.0}, {"amount": True}, {"amount": -1},
    {"amount": 10**30}, {"amount_refunded": None}, {"amount_refunded": "50"}, {"amount_refunded": -5},
    {"amount_refunded": 101}, {"amount_refunded": 10**30}, {"amount": 99, "amount_refunded": 99},
    {"amount": 1000, "amount_refunded": 1000}, {"currency": "eur"}, {"currency": None}, {"currency": 1},
]


@pytest.mark.parametrize("bad", BAD_CHARGES, ids=[repr(b)[:40] for b in BAD_CHARGES])
def test_a_refund_event_with_bad_fields_is_refused_and_moves_nothing(stripe, make_fan, bad):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    event = standin.charge_refunded(purchase.payment_intent, 100)
    event["data"]["object"].update(bad)
    answer = deliver(client, event)
    assert answer["outcome"] == "refused", answer
    assert state(purchase.id) == ("completed", 0, 0) and wallet_of(fan.id) == 100
    assert verify() == []


BAD_DISPUTES = [{"id": None}, {"id": 7}, {"id": "d" * 300}, {"id": {"x": 1}}, {"payment_intent": None},
                {"payment_intent": 1.5}, {"status": None}, {"status": ""}, {"status": ["won"]}]


@pytest.mark.parametrize("bad", BAD_DISPUTES, ids=[repr(b)[:40] for b in BAD_DISPUTES])
@pytest.mark.parametrize("kind", ["charge.dispute.created", "charge.dispute.closed"])
def test_a_dispute_event_with_bad_fields_is_refused_and_moves_nothing(stripe, make_fan, bad, kind):
    client, standin = stripe
    fan = make_fan()
    purchase = paid_purchase(fan, 100, standin=standin)
    event = standin.dispute(purchase.payment_intent, kind, "won")
    event["data"]["object"].update(bad)
    answer = deliver(client, event)
    if kind == "charge.dispute.created" and "status" in bad:
        assert answer["outcome"] == "disputed"  # a new dispute's status is not read
        return
    assert answer["outcome"] == "refused", answer
    assert state(purchase.id) == ("completed", 0, 0) and wallet_of(fan.id) == 100
    assert verify() == []
