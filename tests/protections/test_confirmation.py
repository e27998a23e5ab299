"""Large tips need the fan's confirmation (DESIGN.md §12 "Fan protections"): a tip over
`CONFIRM_TIP_OVER_TOKENS` without `"confirm": true` is 409 `confirmation_required`; the
modal asks "Send N tokens to <name>?". Both paths take the one service rule."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import text

from app.extensions import db
from app.wallet import service as wallet
from tests.helpers import assert_error, visible

HTMX = {"HX-Request": "true"}


def tip(client, headers, creator_id, amount, **extra):
    return client.post("/api/tips/send", json={"toCreatorId": creator_id, "amountTokens": amount, **extra},
                       headers={**headers, "Idempotency-Key": str(uuid.uuid4())})


def tips_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM tips WHERE sender_id = :u"), {"u": user_id})


@pytest.fixture()
def rich(make_fan, api_headers):
    fan = make_fan(balance=10_000)
    fan.headers = api_headers(fan)
    return fan


def test_the_threshold_is_1000_by_default(app):
    assert app.config["CONFIRM_TIP_OVER_TOKENS"] == 1000


def test_a_tip_of_exactly_the_threshold_needs_no_confirmation(client, rich, make_creator):
    assert tip(client, rich.headers, make_creator().id, 1000).status_code == 201


def test_a_tip_over_it_without_confirm_is_409_and_moves_nothing(client, rich, make_creator):
    err = assert_error(tip(client, rich.headers, make_creator().id, 1001), 409, "confirmation_required")
    assert (err["amountTokens"], err["thresholdTokens"]) == (1001, 1000)
    assert tips_of(rich.id) == 0 and wallet.wallet_balance(rich) == 10_000


@pytest.mark.parametrize("confirm", [False, None])
def test_confirm_false_or_null_is_no_confirmation(client, rich, make_creator, confirm):
    assert_error(tip(client, rich.headers, make_creator().id, 5000, confirm=confirm), 409, "confirmation_required")


def test_confirm_true_sends_it(client, rich, make_creator):
    resp = tip(client, rich.headers, make_creator().id, 5000, confirm=True)
    assert resp.status_code == 201 and resp.get_json()["newBalance"] == 5000


@pytest.mark.parametrize("confirm", ["true", 1, "yes", [], {}])
def test_a_confirm_that_is_not_a_boolean_is_422_on_confirm(client, rich, make_creator, confirm):
    assert_error(tip(client, rich.headers, make_creator().id, 5000, confirm=confirm), 422, "invalid_value", "confirm")
    assert tips_of(rich.id) == 0


def test_a_large_tip_the_wallet_cannot_pay_is_402_first_not_a_question(client, make_fan, api_headers, make_creator):
    poor = make_fan(balance=100)
    err = assert_error(tip(client, api_headers(poor), make_creator().id, 5000), 402, "insufficient_funds")
    assert err["required"] == 4900


# ---- the modal asks ---------------------------------------------------------------------------------

@pytest.fixture()
def modal(client, rich, make_creator, login, make_stream):
    creator = make_creator(name="Ada")
    stream = make_stream(creator, live=True)
    csrf = login(rich)
    return dict(creator=creator, stream=stream, csrf=csrf)


def post(client, m, **fields):
    data = {"csrf_token": m["csrf"], "idempotency_key": str(uuid.uuid4()), "toCreatorId": str(m["creator"].id),
            "streamId": str(m["stream"].id), "amountTokens": "100", "customAmount": "", "message": "", **fields}
    return client.post("/tips/send", data=data, headers=HTMX)


def test_the_modal_asks_send_n_tokens_to_name_and_its_button_sends_it(client, rich, modal):
    resp = post(client, modal, customAmount="5,000", message="big one")
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert "Send 5,000 tokens to Ada?" in visible(html)
    assert "Tips over 1,000 tokens ask you to confirm" in visible(html)
    ask = re.search(r'<div class="alert warn tip-ask".*?</form>', html, re.S).group(0)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', ask))
    assert fields["amountTokens"] == "5000" and fields["confirm"] == "1"
    assert 'hx-include="#tip-message"' in ask  # the message typed goes with it
    assert tips_of(rich.id) == 0
    sent = client.post("/tips/send", data={**fields, "message": "big one"}, headers=HTMX)
    assert sent.status_code == 200
    assert "You tipped Ada 5,000 tokens." in visible(sent.get_data(as_text=True))
    assert tips_of(rich.id) == 1 and wallet.wallet_balance(rich) == 5000


def test_the_modal_says_when_tips_ask_to_confirm(client, modal):
    html = client.get(f"/tips/new?creator={modal['creator'].id}", headers=HTMX).get_data(as_text=True)
    assert "Tips over 1,000 tokens ask you to confirm first." in visible(html)
