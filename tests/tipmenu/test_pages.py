"""The tip menu on pages (DESIGN.md §12): in the tip modal (one form per item, 409
price_changed asks again at the new price), on /c/<handle>, and the editor on
/creator/settings (HTMX: rows added, moved, removed, saved; errors next to the row's field)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import text
from werkzeug.datastructures import MultiDict

from app.auth.models import User
from app.extensions import db
from app.tipmenu import service as tipmenu
from app.wallet import service as wallet
from tests.helpers import visible

HTMX = {"HX-Request": "true"}
HOSTILE = '<script>alert("x")</script>'


def hidden_fields(form_html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form_html))


def item_form(html: str, item_id: int) -> str:
    return re.search(rf'<li class="tip-menu-row" id="tip-menu-item-{item_id}">.*?</form>', html, re.S).group(0)


@pytest.fixture()
def scene(client, make_fan, make_creator, login, make_stream):
    fan, creator = make_fan(balance=1000), make_creator(name="Ada")
    stream = make_stream(creator, live=True)
    song, hostile = tipmenu.replace_menu(creator, [{"label": "Song request", "priceTokens": 50},
                                                   {"label": HOSTILE, "priceTokens": 70}])
    csrf = login(fan)
    return dict(fan=fan, creator=creator, stream=stream, song=song.id, hostile=hostile.id, csrf=csrf)


def open_modal(client, s) -> str:
    resp = client.get(f"/tips/new?creator={s['creator'].id}&stream={s['stream'].id}", headers=HTMX)
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


# ---- the modal ----------------------------------------------------------------------------------

def test_the_modal_lists_the_menu_above_the_amount_with_one_button_per_item(client, scene):
    html = open_modal(client, scene)
    assert html.index('data-testid="tip-menu"') < html.index('id="tip-amount"')
    text_ = visible(html)
    assert "Song request Tip 50 tokens for Song request" in text_
    form = item_form(html, scene["song"])
    fields = hidden_fields(form)
    assert (fields["menuItemId"], fields["amountTokens"], fields["streamId"]) == (str(scene["song"]), "50",
                                                                                  str(scene["stream"].id))


def test_hostile_labels_stay_text_in_the_modal(client, scene):
    html = open_modal(client, scene)
    assert HOSTILE not in html and "&lt;script&gt;alert(" in html


def test_one_click_on_an_item_tips_it_and_the_confirmation_names_it(client, scene):
    fields = hidden_fields(item_form(open_modal(client, scene), scene["song"]))
    resp = client.post("/tips/send", data={**fields, "message": "Wonderwall"}, headers=HTMX)
    assert resp.status_code == 200
    assert "You tipped Ada 50 tokens for “Song request”." in visible(resp.get_data(as_text=True))
    row = db.session.execute(text("SELECT amount, menu_item_id, message FROM tips WHERE sender_id = :u"),
                             {"u": scene["fan"].id}).one()
    assert tuple(row) == (50, scene["song"], "Wonderwall")


def test_a_price_changed_meanwhile_asks_again_at_the_new_price(client, scene):
    fields = hidden_fields(item_form(open_modal(client, scene), scene["song"]))
    tipmenu.replace_menu(db.session.get(User, scene["creator"].id),
                         [{"label": "Song request", "priceTokens": 65}, {"label": HOSTILE, "priceTokens": 70}])
    resp = client.post("/tips/send", data=fields, headers=HTMX)
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert "“Song request” now costs 65 tokens" in visible(html)
    ask = re.search(r'<div class="alert warn tip-ask".*?</form>', html, re.S).group(0)
    again = hidden_fields(ask)
    assert (again["amountTokens"], again["menuItemId"]) == ("65", str(scene["song"]))
    assert wallet.wallet_balance(scene["fan"]) == 1000
    done = client.post("/tips/send", data=again, headers=HTMX)
    assert done.status_code == 200 and wallet.wallet_balance(scene["fan"]) == 935


def test_a_removed_item_says_so_next_to_the_amount(client, scene):
    fields = hidden_fields(item_form(open_modal(client, scene), scene["song"]))
    tipmenu.replace_menu(db.session.get(User, scene["creator"].id), [])
    resp = client.post("/tips/send", data=fields, headers=HTMX)
    assert resp.status_code == 404
    assert re.search(r'id="tip-amount-error"[^>]*>[^<]*not on the creator', resp.get_data(as_text=True))


def test_a_menu_tip_past_the_spending_cap_says_what_is_left_next_to_the_amount(client, scene):
    from app.protections import service as protections
    protections.set_daily_limit(db.session.get(User, scene["fan"].id), 60)
    html = open_modal(client, scene)
    assert "Your daily limit leaves 60 tokens today." in visible(html)
    resp = client.post("/tips/send", data=hidden_fields(item_form(html, scene["hostile"])), headers=HTMX)
    assert resp.status_code == 403
    error = re.search(r'<p class="field-error" id="tip-amount-error" role="alert">(.*?)</p>',
                      resp.get_data(as_text=True), re.S).group(1)
    assert "60 tokens left today" in visible(error)


# ---- the creator's page -----------------------------------------------------------------------------

def test_the_creator_page_shows_the_menu_with_tip_buttons_while_live(client, scene):
    html = client.get(f"/c/{scene['creator'].handle}").get_data(as_text=True)
    card = re.search(r'data-testid="creator-tip-menu".*?</section>', html, re.S).group(0)
    assert "Song request" in card and HOSTILE not in card
    assert f"/tips/new?creator={scene['creator'].id}&amp;stream={scene['stream'].id}&amp;item={scene['song']}" in card


def test_the_creator_page_lists_the_menu_without_buttons_when_not_live(new_client, make_creator):
    creator = make_creator()
    tipmenu.replace_menu(creator, [{"label": "Shout-out", "priceTokens": 25}])
    html = new_client().get(f"/c/{creator.handle}").get_data(as_text=True)
    card = re.search(r'data-testid="creator-tip-menu".*?</section>', html, re.S).group(0)
    assert "Shout-out" in visible(card) and "25 tokens" in visible(card) and "/tips/new" not in card


def test_no_menu_no_card(new_client, make_creator):
    creator = make_creator()
    assert 'data-testid="creator-tip-menu"' not in new_client().get(f"/c/{creator.handle}").get_data(as_text=True)


# ---- the editor -----------------------------------------------------------------------------------------

@pytest.fixture()
def editor(client, make_creator, login):
    creator = make_creator()
    csrf = login(creator)
    return dict(creator=creator, csrf=csrf)


def edit(client, e, rows, op="save"):
    data = [("csrf_token", e["csrf"]), ("op", op)]
    for label, price in rows:
        data += [("label", label), ("priceTokens", price)]
    return client.post("/creator/tip-menu", data=MultiDict(data), headers=HTMX)


def test_the_settings_page_has_the_editor_with_the_saved_menu(client, editor):
    tipmenu.replace_menu(editor["creator"], [{"label": "Song", "priceTokens": 50}])
    html = client.get("/creator/settings").get_data(as_text=True)
    assert 'id="tip-menu"' in html and 'value="Song"' in html and 'value="50"' in html


def test_save_publishes_the_rows_in_order_dropping_blank_ones(client, editor):
    resp = edit(client, editor, [("Song", "50"), ("", ""), ("Dance", "1,000")])
    assert resp.status_code == 200
    assert 'data-testid="tip-menu-saved"' in resp.get_data(as_text=True)
    assert [(i.label, i.price_tokens) for i in tipmenu.listed_items(editor["creator"].id)] == [("Song", 50),
                                                                                            ("Dance", 1000)]


def test_add_move_and_remove_change_the_rows_but_save_nothing(client, editor):
    html = edit(client, editor, [("A", "1"), ("B", "2")], op="add").get_data(as_text=True)
    assert html.count('name="label"') == 3 and "Not saved yet" in html
    html = edit(client, editor, [("A", "1"), ("B", "2")], op="up-1").get_data(as_text=True)
    assert html.index('value="B"') < html.index('value="A"')
    html = edit(client, editor, [("A", "1"), ("B", "2")], op="down-0").get_data(as_text=True)
    assert html.index('value="B"') < html.index('value="A"')
    html = edit(client, editor, [("A", "1"), ("B", "2")], op="remove-0").get_data(as_text=True)
    assert 'value="A"' not in html and 'value="B"' in html
    assert tipmenu.listed_items(editor["creator"].id) == []


@pytest.mark.parametrize("op", ["up-0", "down-1", "remove-9", "up-x", "bogus", "up-", "remove-٣"])
def test_edits_that_name_no_row_change_nothing(client, editor, op):
    html = edit(client, editor, [("A", "1"), ("B", "2")], op=op).get_data(as_text=True)
    assert html.index('value="A"') < html.index('value="B"')


def test_errors_show_next_to_the_rows_field_and_nothing_is_saved(client, editor):
    resp = edit(client, editor, [("Song", "50"), ("song", "0"), ("x" * 61, "5")])
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(r'id="menu-label-1"[^>]*aria-invalid="true" aria-describedby="menu-label-1-error"', html)
    assert re.search(r'id="menu-label-1-error" role="alert">[^<]*already on the menu', html)
    assert re.search(r'id="menu-price-1-error" role="alert">The amount must be at least 1 token', html)
    assert re.search(r'id="menu-label-2-error" role="alert">Label can be at most 60 characters', html)
    assert 'id="menu-label-0-error"' not in html
    assert tipmenu.listed_items(editor["creator"].id) == []


def test_31_rows_is_an_error_for_the_whole_menu(client, editor):
    resp = edit(client, editor, [(f"Item {i}", "1") for i in range(31)])
    assert resp.status_code == 422
    assert re.search(r'id="tip-menu-error" role="alert">A tip menu holds at most 30 items', resp.get_data(as_text=True))


def test_add_stops_at_30_rows(client, editor):
    html = edit(client, editor, [(f"Item {i}", "1") for i in range(30)], op="add").get_data(as_text=True)
    assert html.count('name="label"') == 30 and 'id="menu-add"' not in html


def test_a_fan_cannot_edit_a_menu(client, make_fan, login):
    fan = make_fan()
    csrf = login(fan)
    resp = client.post("/creator/tip-menu", data={"csrf_token": csrf, "label": "x", "priceTokens": "1"}, headers=HTMX)
    assert resp.status_code == 403


def test_without_javascript_a_save_goes_back_to_the_settings_page(client, editor):
    resp = client.post("/creator/tip-menu", data={"csrf_token": editor["csrf"], "label": "Song",
                                                  "priceTokens": "5", "op": "save"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/creator/settings#tip-menu")
    bad = client.post("/creator/tip-menu", data={"csrf_token": editor["csrf"], "label": "Song", "priceTokens": "0"})
    assert bad.status_code == 422 and "<html" in bad.get_data(as_text=True).lower()
