"""A fan who owes tokens after a refund or chargeback cannot spend (403
`account_restricted`) until a credit repays the debt; /wallet shows the debt
(DESIGN.md §11)."""
from __future__ import annotations

import re
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from app import ledger
from app.calls import service as calls
from app.extensions import db
from app.ledger.verify import verify
from app.streams import service as streams
from app.streams import tickets
from app.wallet import service as wallet
from tests.helpers import assert_error, log_in, visible
from tests.wallet.reversal_helpers import indebted_fan, owed, paid_purchase, refund_now, wallet_of

HTMX = {"HX-Request": "true"}
OWED = 40
RESTRICTED = (f"Your account is restricted: {OWED} tokens are owed after a refund or chargeback. "
              "Buy tokens to repay them.")


def counts(fan_id: int) -> tuple:
    db.session.rollback()
    return tuple(db.session.scalar(text(sql), {"u": fan_id}) for sql in (
        "SELECT count(*) FROM tips WHERE sender_id = :u", "SELECT count(*) FROM tickets WHERE fan_id = :u",
        "SELECT count(*) FROM calls WHERE fan_id = :u")) + (wallet_of(fan_id), owed(fan_id))


@pytest.fixture()
def debtor(make_fan, make_creator, make_stream, api_headers):
    """A fan owing 40 tokens (the refund emptied the 5 left in the wallet), and a creator who is
    live, sells a show and takes calls."""
    fan, creator, purchase = indebted_fan(make_fan, make_creator, OWED, held=5)
    live = make_stream(creator, title="Live now", live=True)
    show = make_stream(creator, "private", title="Members night", ticket_price=10)
    calls.update_settings(creator, 1, True)
    return SimpleNamespace(fan=fan, creator=creator, purchase=purchase, live_id=live.id, show_id=show.id,
                           headers=api_headers(fan))


def spend_api(client, s) -> list:
    """The three ways to spend, through the JSON API."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    return [
        client.post("/api/tips/send", json={"toCreatorId": s.creator.id, "amountTokens": 5,
                                            "context": {"streamId": s.live_id}}, headers={**s.headers, **key}),
        client.post(f"/api/streams/{s.show_id}/tickets/checkout", headers=s.headers),
        client.post("/api/calls/init", json={"creatorId": s.creator.id}, headers=s.headers),
    ]


def test_a_fan_who_owes_gets_403_account_restricted_on_tips_tickets_and_calls(client, debtor):
    before = counts(debtor.fan.id)
    for resp in spend_api(client, debtor):
        body = assert_error(resp, 403, "account_restricted")
        assert body["owed"] == OWED and body["error"].startswith(RESTRICTED.removesuffix(" them."))
    assert counts(debtor.fan.id) == before
    assert verify() == []


def test_the_pages_say_why_next_to_the_action_with_a_link_to_the_wallet(client, debtor):
    csrf = log_in(client, debtor.fan)
    before = counts(debtor.fan.id)
    answers = {
        "tip modal": client.post("/tips/send", headers=HTMX, data={
            "csrf_token": csrf, "idempotency_key": str(uuid.uuid4()), "toCreatorId": str(debtor.creator.id),
            "streamId": str(debtor.live_id), "amountTokens": "50"}),
        "ticket gate": client.post(f"/streams/{debtor.show_id}/ticket", headers={**HTMX, "X-CSRFToken": csrf}),
        "call modal": client.post("/calls", headers={**HTMX, "X-CSRFToken": csrf},
                                  data={"creatorId": str(debtor.creator.id), "rate": "1"}),
    }
    marks = {"tip modal": "Send tip", "ticket gate": 'data-testid="ticket-gate"', "call modal": "Call now"}
    for where, resp in answers.items():
        page = resp.get_data(as_text=True)
        assert resp.status_code == 403, (where, page[:500])
        assert marks[where] in page, where  # the same form, with the reason beside its button
        notice = re.search(r'<p class="field-error" role="alert" data-testid="restricted">(.*?)</p>', page, re.S)
        assert notice and visible(notice.group(1)) == RESTRICTED, (where, page[:2000])
        assert 'href="/wallet" data-testid="restricted-wallet-link"' in notice.group(1), where
    assert counts(debtor.fan.id) == before


def test_a_fan_with_an_empty_wallet_and_no_debt_still_gets_402(client, make_fan, make_creator, make_stream,
                                                                api_headers):
    s = SimpleNamespace(fan=make_fan(), creator=make_creator())
    s.live_id = make_stream(s.creator, live=True).id
    s.show_id = make_stream(s.creator, "private", ticket_price=10).id
    calls.update_settings(s.creator, 1, True)
    s.headers = api_headers(s.fan)
    for resp in spend_api(client, s):
        assert_error(resp, 402, "insufficient_funds")


def test_a_purchase_repays_the_debt_first_and_lifts_the_restriction(client, debtor):
    """A real purchase (the demo provider credits at once): its tokens repay the debt
    first, the rest lands in the wallet, and spending works again."""
    result = wallet.purchase_tokens(debtor.fan, OWED + 15, f"repay-{uuid.uuid4()}")
    assert result.new_balance == 15
    assert owed(debtor.fan.id) == 0 and wallet_of(debtor.fan.id) == 15
    assert verify() == []
    resp = spend_api(client, debtor)[0]
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_a_credit_that_repays_part_of_the_debt_keeps_the_restriction(client, debtor, make_fan):
    wallet.purchase_tokens(debtor.fan, OWED - 1, f"repay-{uuid.uuid4()}")
    assert owed(debtor.fan.id) == 1 and wallet_of(debtor.fan.id) == 0
    assert_error(spend_api(client, debtor)[0], 403, "account_restricted")
    wallet.purchase_tokens(debtor.fan, 6, f"repay-{uuid.uuid4()}")
    assert owed(debtor.fan.id) == 0 and wallet_of(debtor.fan.id) == 5
    assert spend_api(client, debtor)[0].status_code == 201
    assert verify() == []


def test_a_show_refund_to_a_fan_in_debt_repays_the_debt_first(make_fan, make_creator, make_stream):
    """Two ticket holders of a canceled show: the one who owes 60 after a refund gets
    their 80 as 60 repaid + 20 in the wallet; the other gets all 80 in the wallet.
    One transfer for the batch."""
    creator = make_creator()
    show = make_stream(creator, "private", title="Canceled night", ticket_price=80)
    debtor, other = make_fan(), make_fan(balance=80)
    purchase = paid_purchase(debtor, 100, provider="demo")
    tickets.checkout(debtor, show)
    tickets.checkout(other, show)
    refund_now(purchase, 100)  # the wallet held 20: 80 more are owed
    assert wallet_of(debtor.id) == 0 and owed(debtor.id) == 80
    assert verify() == []
    streams.change_status(creator, show.id, "cancel")
    tickets.refund_show(show.id)
    assert owed(debtor.id) == 0 and wallet_of(debtor.id) == 0
    assert wallet_of(other.id) == 80
    assert db.session.scalar(text("SELECT count(DISTINCT refund_transfer_id) FROM tickets WHERE stream_id = :s"),
                             {"s": show.id}) == 1
    assert verify() == []


def test_a_show_refund_larger_than_the_debt_repays_it_and_the_rest_lands_in_the_wallet(make_fan, make_creator,
                                                                                       make_stream):
    """A 30-token ticket bought with a purchase later refunded (debt 30), 10 of it repaid by a
    later purchase: the show's refund repays the other 20 and leaves 10 in the wallet."""
    creator = make_creator()
    show = make_stream(creator, "private", ticket_price=30)
    fan = make_fan()
    purchase = paid_purchase(fan, 30, provider="demo")
    tickets.checkout(fan, show)
    refund_now(purchase, 30)
    paid_purchase(fan, 10, provider="demo")
    assert owed(fan.id) == 20 and wallet_of(fan.id) == 0
    streams.change_status(creator, show.id, "cancel")
    tickets.refund_show(show.id)
    assert owed(fan.id) == 0 and wallet_of(fan.id) == 10
    assert verify() == []


def test_lock_holders_locks_and_opens_accounts_for_many_users_at_once(make_fan):
    fans = [make_fan() for _ in range(3)]
    db.session.rollback()
    holders = ledger.lock_holders([f.id for f in reversed(fans)] + [fans[0].id])
    assert sorted(holders) == sorted(f.id for f in fans)
    for f in fans:
        h = holders[f.id]
        assert (h.user_id, h.wallet.kind, h.debt.kind, h.wallet_balance, h.owed) == (f.id, "wallet", "debt", 0, 0)
        assert h.wallet == ledger.account_for(f.id, "wallet") and h.debt == ledger.account_for(f.id, "debt")
    db.session.rollback()


# ---- /wallet ------------------------------------------------------------------------------

def test_the_wallet_shows_the_debt_why_and_a_way_to_repay_it(client, debtor):
    log_in(client, debtor.fan)
    page = client.get("/wallet").get_data(as_text=True)
    notice = re.search(r'data-testid="debt">(.*?)</div>', page, re.S)
    assert notice, page[:3000]
    text_ = visible(notice.group(1))
    assert text_.startswith(f"You owe {OWED} tokens. A refund or chargeback took back tokens you had already spent.")
    assert f'href="/wallet?topup={OWED}#buy-heading"' in notice.group(1) and "Buy tokens to repay" in text_
    # The history says in words what happened to the tokens.
    assert f"Taken back: purchase #{debtor.purchase.id} was refunded" in page


def test_the_wallet_shows_no_debt_notice_to_a_fan_who_owes_nothing(client, make_fan):
    log_in(client, make_fan(balance=10))
    page = client.get("/wallet").get_data(as_text=True)
    assert 'data-testid="debt"' not in page and "You owe" not in page
    assert '<div id="wallet-debt">' in page  # and no htmx trigger: nothing can change while it shows
