"""PUT /api/creator/tip-menu and GET /api/creators/:id/tip-menu (DESIGN.md §12 "Tip menu").

Real PostgreSQL; concurrent edits with real threads.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from app.auth.models import User
from app.config import Config
from app.extensions import db
from app.tipmenu import service as tipmenu
from tests.helpers import assert_error, run_together

MAX_TIP = Config().MAX_TIP_TOKENS


def put_menu(client, headers, items):
    return client.put("/api/creator/tip-menu", json={"items": items}, headers=headers)


def rows_of(creator_id: int) -> list[tuple]:
    """Every row of the creator's menu, listed or not: (id, label, price, position, removed)."""
    return [tuple(r) for r in db.session.execute(text(
        "SELECT id, label, price_tokens, position, removed_at IS NOT NULL FROM tip_menu_items "
        "WHERE creator_id = :c ORDER BY id"), {"c": creator_id})]


@pytest.fixture()
def creator(make_creator, api_headers):
    c = make_creator()
    c.headers = api_headers(c)
    return c


# ---- happy path ------------------------------------------------------------------------------

def test_put_returns_the_items_in_order_with_ids_and_get_reads_them_publicly(client, creator, new_client):
    items = [{"label": "Song request", "priceTokens": 50}, {"label": "Dance", "priceTokens": 200}]
    resp = put_menu(client, creator.headers, items)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert [(i["label"], i["priceTokens"]) for i in body["items"]] == [("Song request", 50), ("Dance", 200)]
    assert all(isinstance(i["id"], int) for i in body["items"]) and set(body["items"][0]) == {"id", "label",
                                                                                               "priceTokens"}
    anonymous = new_client().get(f"/api/creators/{creator.id}/tip-menu")
    assert anonymous.status_code == 200
    assert anonymous.get_json() == body


def test_labels_are_trimmed_and_a_form_style_price_is_refused_in_json(client, creator):
    resp = put_menu(client, creator.headers, [{"label": "  Shout-out  ", "priceTokens": 10}])
    assert resp.get_json()["items"][0]["label"] == "Shout-out"
    assert_error(put_menu(client, creator.headers, [{"label": "x", "priceTokens": "10"}]), 422, "invalid_value",
                 "items[0].priceTokens")


def test_an_item_whose_label_stays_keeps_its_id_a_new_label_gets_a_new_id_removed_rows_stay(client, creator):
    first = put_menu(client, creator.headers, [{"label": "Song", "priceTokens": 50},
                                               {"label": "Dance", "priceTokens": 200},
                                               {"label": "Hat on", "priceTokens": 30}]).get_json()["items"]
    ids = {i["label"]: i["id"] for i in first}
    second = put_menu(client, creator.headers, [{"label": "Dance", "priceTokens": 250},
                                                {"label": "song", "priceTokens": 50},
                                                {"label": "Juggle", "priceTokens": 80}]).get_json()["items"]
    assert [(i["label"], i["priceTokens"]) for i in second] == [("Dance", 250), ("song", 50), ("Juggle", 80)]
    assert second[0]["id"] == ids["Dance"]  # price edit: same id
    assert second[1]["id"] == ids["Song"]  # same label ignoring case: same id, label as now written
    assert second[2]["id"] not in ids.values()
    rows = {r[0]: r for r in rows_of(creator.id)}
    assert rows[ids["Hat on"]][4] is True  # removed, row kept for the tips naming it
    assert sum(1 for r in rows.values() if not r[4]) == 3


def test_swapping_two_items_positions_and_emptying_the_menu_work(client, creator):
    items = [{"label": "A", "priceTokens": 1}, {"label": "B", "priceTokens": 2}]
    before = put_menu(client, creator.headers, items).get_json()["items"]
    after = put_menu(client, creator.headers, items[::-1]).get_json()["items"]
    assert [i["id"] for i in after] == [before[1]["id"], before[0]["id"]]
    resp = put_menu(client, creator.headers, [])
    assert resp.status_code == 200 and resp.get_json() == {"items": []}
    assert client.get(f"/api/creators/{creator.id}/tip-menu").get_json() == {"items": []}


def test_30_items_and_60_character_labels_and_max_price_are_accepted(client, creator):
    items = [{"label": f"{i:02d}" + "x" * 58, "priceTokens": MAX_TIP} for i in range(30)]
    resp = put_menu(client, creator.headers, items)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert len(resp.get_json()["items"]) == 30


def test_hostile_labels_are_stored_and_returned_as_raw_text(client, creator):
    label = '<img src=x onerror="alert(1)">'
    items = put_menu(client, creator.headers, [{"label": label, "priceTokens": 5}]).get_json()["items"]
    assert items[0]["label"] == label
    assert rows_of(creator.id)[0][1] == label


# ---- who may ------------------------------------------------------------------------------------

def test_a_fan_cannot_have_a_menu_403(client, make_fan, api_headers):
    fan = make_fan()
    assert_error(put_menu(client, api_headers(fan), [{"label": "x", "priceTokens": 1}]), 403, "not_a_creator")


def test_anonymous_put_is_401(client):
    assert_error(client.put("/api/creator/tip-menu", json={"items": []}), 401)


def test_get_of_an_unknown_user_or_a_fan_is_404(client, make_fan):
    assert_error(client.get("/api/creators/999999999/tip-menu"), 404, "creator_not_found")
    assert_error(client.get(f"/api/creators/{make_fan().id}/tip-menu"), 404, "creator_not_found")


# ---- bad input: 422 on the item's field, nothing written ---------------------------------------

@pytest.mark.parametrize("price", [0, -1, MAX_TIP + 1, 10**30, 1.5, True, None, "50", "٣", [], {}])
def test_a_bad_price_is_422_on_that_items_priceTokens(client, creator, price):
    items = [{"label": f"L{i}", "priceTokens": 5} for i in range(3)]
    items.append({"label": "Bad", "priceTokens": price})
    assert_error(put_menu(client, creator.headers, items), 422, "invalid_value", "items[3].priceTokens")
    assert rows_of(creator.id) == []


@pytest.mark.parametrize("label", ["", "   ", "x" * 61, "two\nlines", "tab\there", 5, None, ["x"], "\u202eevil"])
def test_a_bad_label_is_422_on_that_items_label(client, creator, label):
    items = [{"label": "fine", "priceTokens": 1}, {"label": label, "priceTokens": 1}]
    assert_error(put_menu(client, creator.headers, items), 422, "invalid_value", "items[1].label")
    assert rows_of(creator.id) == []


@pytest.mark.parametrize("label", ["nul\x00", "\ud800"])
def test_a_nul_byte_or_lone_surrogate_in_a_label_is_400_and_writes_nothing(client, creator, label):
    body = json.dumps({"items": [{"label": label, "priceTokens": 1}]})
    resp = client.put("/api/creator/tip-menu", data=body, content_type="application/json", headers=creator.headers)
    assert_error(resp, 400)
    assert rows_of(creator.id) == []


def test_a_duplicate_label_ignoring_case_and_spaces_is_422_on_the_second(client, creator):
    items = [{"label": "Song", "priceTokens": 1}, {"label": "Dance", "priceTokens": 1},
             {"label": " song ", "priceTokens": 2}]
    body = assert_error(put_menu(client, creator.headers, items), 422, "invalid_value", "items[2].label")
    assert "already on the menu" in body["error"]


def test_31_items_is_422_on_items(client, creator):
    items = [{"label": f"Item {i}", "priceTokens": 1} for i in range(31)]
    assert_error(put_menu(client, creator.headers, items), 422, "too_many_items", "items")
    assert rows_of(creator.id) == []


@pytest.mark.parametrize("body", [{}, {"items": None}, {"items": "x"}, {"items": {"label": "x"}}, {"items": 3}])
def test_items_that_are_not_a_list_is_422_on_items(client, creator, body):
    assert_error(client.put("/api/creator/tip-menu", json=body, headers=creator.headers), 422, field="items")


def test_an_item_that_is_not_an_object_is_422_on_it(client, creator):
    assert_error(put_menu(client, creator.headers, [{"label": "a", "priceTokens": 1}, "b"]), 422, field="items[1]")


def test_a_failed_edit_leaves_the_menu_as_it_was(client, creator):
    good = put_menu(client, creator.headers, [{"label": "Keep", "priceTokens": 9}]).get_json()
    assert_error(put_menu(client, creator.headers, [{"label": "New", "priceTokens": 0}]), 422)
    assert client.get(f"/api/creators/{creator.id}/tip-menu").get_json() == good


# ---- concurrency -------------------------------------------------------------------------------

def test_concurrent_edits_of_one_menu_each_apply_whole_and_the_last_one_stands(app, creator):
    """Ten editors at once: no unique-index error, no mixed menu; the menu is one of the ten."""
    creator_id = creator.id
    menus = [[{"label": f"Item {k}-{i}", "priceTokens": 10 * k + i + 1} for i in range(k % 4 + 1)]
             + [{"label": "Shared", "priceTokens": k + 1}] for k in range(10)]

    def edit(k):
        return [i.label for i in tipmenu.replace_menu(db.session.get(User, creator_id), menus[k])]

    results = run_together(app, 10, edit)
    assert not [r for r in results if isinstance(r, Exception)], results
    db.session.rollback()
    listed = [(i.label, i.price_tokens) for i in tipmenu.listed_items(creator_id)]
    assert listed in [[(m["label"], m["priceTokens"]) for m in menu] for menu in menus]
    # "Shared" kept one id through every edit.
    assert db.session.scalar(text("SELECT count(*) FROM tip_menu_items WHERE creator_id = :c AND label = 'Shared'"),
                             {"c": creator_id}) == 1
