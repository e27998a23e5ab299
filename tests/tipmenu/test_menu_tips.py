"""A tip for a menu item: `POST /api/tips/send {…, menuItemId}` (DESIGN.md §12 "Tip menu").

The item must be the recipient's and listed (else 404 `menu_item_not_found`), the tip must
pay exactly its current price (else 409 `price_changed` with `currentPriceTokens`), and that
holds against a concurrent edit of the menu. Real PostgreSQL and Redis, real threads.
"""
from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from app import ledger
from app.auth.models import User
from app.errors import Conflict
from app.extensions import db
from app.tipmenu import service as tipmenu
from app.tips import service as tips
from app.wallet import service as wallet
from tests.helpers import assert_error, run_together, visible


def send(client, headers, body, key=None):
    return client.post("/api/tips/send", json=body, headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())})


def tips_of(user_id: int) -> int:
    return db.session.scalar(text("SELECT count(*) FROM tips WHERE sender_id = :u"), {"u": user_id})


@pytest.fixture()
def scene(make_fan, make_creator, api_headers, make_stream):
    """A fan (1,000 tokens), a creator live on a public stream with a menu: Song 50, Dance 200."""
    fan, creator = make_fan(balance=1000), make_creator(name="Ada")
    stream = make_stream(creator, live=True)
    song, dance = tipmenu.replace_menu(creator, [{"label": "Song request", "priceTokens": 50},
                                                 {"label": "Dance", "priceTokens": 200}])
    return SimpleNamespace(fan=fan, creator=creator, stream=stream, song=song.id, dance=dance.id,
                           headers=api_headers(fan))


def body(s, item, amount, **extra):
    return {"toCreatorId": s.creator.id, "amountTokens": amount, "menuItemId": item,
            "context": {"streamId": s.stream.id}, **extra}


def test_a_menu_tip_at_its_price_is_201_and_names_the_item(client, scene):
    s = scene
    resp = send(client, s.headers, body(s, s.song, 50, message="Play it!"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    tip = resp.get_json()["tip"]
    assert (tip["menuItemId"], tip["menuLabel"], tip["amountTokens"]) == (s.song, "Song request", 50)
    row = db.session.execute(text("SELECT menu_item_id, menu_label FROM tips WHERE id = :i"), {"i": tip["id"]}).one()
    assert tuple(row) == (s.song, "Song request")
    assert resp.get_json()["newBalance"] == 950
    assert ledger.verify() == []


def test_the_stream_page_and_the_overlay_partial_say_what_was_bought(client, scene, login, new_client):
    s = scene
    send(client, s.headers, body(s, s.song, 50))
    viewer = new_client()
    page = viewer.get(f"/streams/{s.stream.id}").get_data(as_text=True)
    assert "tipped 50 tokens for “Song request”" in visible(page)


def test_the_tip_keeps_the_label_it_bought_after_the_item_is_renamed_or_removed(client, scene):
    s = scene
    tip_id = send(client, s.headers, body(s, s.song, 50)).get_json()["tip"]["id"]
    tipmenu.replace_menu(db.session.get(User, s.creator.id), [{"label": "Dance", "priceTokens": 200}])
    assert db.session.scalar(text("SELECT menu_label FROM tips WHERE id = :i"), {"i": tip_id}) == "Song request"


def test_a_tip_at_an_old_price_is_409_price_changed_with_the_current_price_and_moves_nothing(client, scene):
    s = scene
    tipmenu.replace_menu(db.session.get(User, s.creator.id), [{"label": "Song request", "priceTokens": 60},
                                                              {"label": "Dance", "priceTokens": 200}])
    err = assert_error(send(client, s.headers, body(s, s.song, 50)), 409, "price_changed")
    assert err["currentPriceTokens"] == 60 and err["menuItemId"] == s.song
    assert tips_of(s.fan.id) == 0 and wallet.wallet_balance(s.fan) == 1000
    assert send(client, s.headers, body(s, s.song, 60)).status_code == 201


@pytest.mark.parametrize("amount", [49, 51, 1])
def test_any_amount_but_the_price_is_409(client, scene, amount):
    assert_error(send(client, scene.headers, body(scene, scene.song, amount)), 409, "price_changed")


def test_a_removed_item_is_404_menu_item_not_found(client, scene):
    s = scene
    tipmenu.replace_menu(db.session.get(User, s.creator.id), [{"label": "Dance", "priceTokens": 200}])
    assert_error(send(client, s.headers, body(s, s.song, 50)), 404, "menu_item_not_found")
    assert tips_of(s.fan.id) == 0


def test_another_creators_item_or_an_unknown_item_is_404(client, scene, make_creator):
    s = scene
    other = make_creator()
    (theirs,) = tipmenu.replace_menu(other, [{"label": "Song request", "priceTokens": 50}])
    assert_error(send(client, s.headers, body(s, theirs.id, 50)), 404, "menu_item_not_found")
    assert_error(send(client, s.headers, body(s, 2**62, 50)), 404, "menu_item_not_found")
    assert tips_of(s.fan.id) == 0


@pytest.mark.parametrize("item", [0, -1, 1.5, True, "5", "", [], {}, 2**63, "٣"])
def test_a_menuItemId_that_is_not_an_id_is_422_on_menuItemId(client, scene, item):
    assert_error(send(client, scene.headers, body(scene, item, 50)), 422, "invalid_value", "menuItemId")
    assert tips_of(scene.fan.id) == 0


def test_null_menuItemId_is_a_plain_tip(client, scene):
    tip = send(client, scene.headers, body(scene, None, 50)).get_json()["tip"]
    assert tip["menuItemId"] is None and tip["menuLabel"] is None


def test_a_menu_tip_over_the_confirmation_threshold_needs_confirm(client, scene, make_fan, api_headers):
    s = scene
    rich = make_fan(balance=5000)
    (big,) = tipmenu.replace_menu(db.session.get(User, s.creator.id), [{"label": "Private song", "priceTokens": 2000}])
    b = body(s, big.id, 2000)
    assert_error(send(client, api_headers(rich), b), 409, "confirmation_required")
    assert send(client, api_headers(rich), {**b, "confirm": True}).status_code == 201


# ---- idempotency ----------------------------------------------------------------------------

def test_a_replay_returns_the_first_tip_even_after_the_price_changed(client, scene):
    s = scene
    first = send(client, s.headers, body(s, s.song, 50), key="menu-replay")
    tipmenu.replace_menu(db.session.get(User, s.creator.id), [{"label": "Song request", "priceTokens": 70}])
    again = send(client, s.headers, body(s, s.song, 50), key="menu-replay")
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert tips_of(s.fan.id) == 1 and wallet.wallet_balance(s.fan) == 950


def test_a_replay_with_another_item_or_without_one_is_409_key_reused(client, scene):
    s = scene
    send(client, s.headers, body(s, s.song, 50), key="menu-key")
    assert_error(send(client, s.headers, body(s, s.dance, 200), key="menu-key"), 409, "idempotency_key_reused")
    assert_error(send(client, s.headers, body(s, None, 50), key="menu-key"), 409, "idempotency_key_reused")
    assert tips_of(s.fan.id) == 1 and wallet.wallet_balance(s.fan) == 950


# ---- against a concurrent edit ----------------------------------------------------------------

def test_a_tip_waits_for_an_uncommitted_price_edit_and_is_then_told_price_changed(app, scene):
    """The item's row is share-locked in the tip's transaction: a tip at the old price that
    reads while an edit is in flight waits for it, and sees the new price (never pays the old)."""
    s = scene
    fan_id, creator_id, song = s.fan.id, s.creator.id, s.song
    db.session.commit()
    editor = db.engine.connect()
    edit = editor.begin()
    editor.execute(text("UPDATE tip_menu_items SET price_tokens = 60 WHERE id = :i"), {"i": song})
    outcome = {}

    def tip():
        with app.app_context():
            try:
                outcome["tip"] = tips.send_tip(db.session.get(User, fan_id), creator_id, 50, "", None,
                                               str(uuid.uuid4()), menu_item_id=song)
            except Exception as exc:  # noqa: BLE001 - inspected below
                outcome["error"] = exc
            finally:
                db.session.remove()

    worker = threading.Thread(target=tip)
    worker.start()
    time.sleep(0.5)
    waiting = worker.is_alive()
    edit.commit()
    editor.close()
    worker.join(10)
    assert waiting, f"the tip did not wait for the edit: {outcome}"
    assert isinstance(outcome.get("error"), Conflict) and outcome["error"].code == "price_changed", outcome
    assert outcome["error"].extra["currentPriceTokens"] == 60
    assert tips_of(fan_id) == 0


def test_tips_racing_a_price_edit_each_pay_the_price_they_were_checked_against(app, scene, make_fan):
    """20 fans tip the 50-token song while the creator raises it to 60: every tip is either
    201 at 50 (committed before the edit) or 409 price_changed; none is paid at a price the
    item no longer had when the tip committed."""
    s = scene
    creator_id, song = s.creator.id, s.song
    fans = [make_fan(balance=100).id for _ in range(20)]
    db.session.commit()

    def act(i):
        if i == 20:
            time.sleep(0.01)
            tipmenu.replace_menu(db.session.get(User, creator_id), [{"label": "Song request", "priceTokens": 60},
                                                                    {"label": "Dance", "priceTokens": 200}])
            return db.session.scalar(text("SELECT max(id) FROM tips"))
        return tips.send_tip(db.session.get(User, fans[i]), creator_id, 50, "", None, str(uuid.uuid4()),
                             menu_item_id=song).tip.id

    results = run_together(app, 21, act)
    edited_after_tip = results[20]
    assert not isinstance(edited_after_tip, Exception), edited_after_tip
    made = [r for r in results[:20] if isinstance(r, int)]
    refused = [r for r in results[:20] if not isinstance(r, int)]
    assert all(isinstance(r, Conflict) and r.code == "price_changed" for r in refused), refused
    # Tips that paid 50 all committed before the edit did (the edit waited for their locks).
    assert all(tip_id <= (edited_after_tip or 0) for tip_id in made), (made, edited_after_tip)
    assert ledger.verify() == []
