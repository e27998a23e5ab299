"""The tip menu (DESIGN.md §12): a creator's list of things to tip for, each at a price.

* A creator replaces the whole menu at once (`replace_menu`): up to 30 items, labels
  1–60 characters on one line, unique on the menu ignoring case, prices
  1..`MAX_TIP_TOKENS`. An item whose label stays (ignoring case) keeps its id, so a
  tip sent at its old price is told `price_changed`; removed items keep their row
  (`removed_at`): the tips that bought them name them. Edits of one creator's menu run
  one at a time (their users row is locked).
* A tip for an item (`item_for_tip`, in the tip's transaction before its ledger
  statement) must name a listed item of the creator it tips (else 404
  `menu_item_not_found`) and pay exactly its current price (else 409 `price_changed`,
  with `currentPriceTokens`). The item's row is held with a shared lock until the tip
  commits, so a concurrent edit waits for the tip, or the tip sees the edit.
"""
from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from app import validation
from app.auth.models import User
from app.auth.service import require_creator
from app.errors import Conflict, InvalidValue, NotFound
from app.extensions import db
from app.tipmenu.models import TipMenuItem

MAX_ITEMS = 30
LABEL_MAX = 60


def listed_items(creator_id: int) -> list[TipMenuItem]:
    """The creator's menu as listed, in order (empty for anyone without one)."""
    return list(db.session.scalars(select(TipMenuItem).where(
        TipMenuItem.creator_id == creator_id, TipMenuItem.removed_at.is_(None)).order_by(TipMenuItem.position)))


def public_menu(creator_id: int) -> list[TipMenuItem]:
    """`GET /api/creators/:id/tip-menu`: `NotFound` unless `creator_id` is a creator's."""
    creator = db.session.get(User, creator_id)
    if creator is None or not creator.is_creator:
        raise NotFound("No such creator.", "creator_not_found")
    return listed_items(creator_id)


def max_price() -> int:
    return current_app.config["MAX_TIP_TOKENS"]


def parse_items(raw, *, from_form: bool = False) -> list[tuple[str, int]]:
    """`[{label, priceTokens}, …]` as `(label, price)` pairs, in order. Raises one
    `InvalidValue` naming every bad field (`items[3].priceTokens`; the first is `field`)."""
    if not isinstance(raw, list):
        raise InvalidValue("items must be a list of {label, priceTokens}.", field="items")
    if len(raw) > MAX_ITEMS:
        raise InvalidValue(f"A tip menu holds at most {MAX_ITEMS} items.", "too_many_items", field="items")
    errors = validation.Errors()
    items, seen = [], {}
    for i, item in enumerate(raw):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            errors.add(where, "Each item must be an object {label, priceTokens}.")
            continue
        label = errors.check(f"{where}.label", validation.text_value, item.get("label"), f"{where}.label",
                             label="Label", max_length=LABEL_MAX)
        price = errors.check(f"{where}.priceTokens", validation.token_amount, item.get("priceTokens"),
                             f"{where}.priceTokens", maximum=max_price(), from_form=from_form)
        if label is not None:
            key = label.casefold()
            if key in seen:
                errors.add(f"{where}.label", f"“{label}” is already on the menu (item {seen[key] + 1}).")
                label = None
            else:
                seen[key] = i
        items.append((label, price))
    errors.raise_if_any()
    return items


def replace_menu(creator, raw_items, *, from_form: bool = False) -> list[TipMenuItem]:
    """Make `raw_items` the creator's menu, in that order; commits; returns it.
    Raises `Forbidden` (not a creator) and `InvalidValue` (see `parse_items`)."""
    require_creator(creator, "Only creators have a tip menu.")
    items = parse_items(raw_items, from_form=from_form)
    try:
        # One edit of this menu at a time. NO KEY UPDATE: tips (whose rows point at the
        # creator) don't wait for it.
        db.session.execute(select(User.id).where(User.id == creator.id).with_for_update(key_share=True))
        current = {row.label.casefold(): row for row in db.session.scalars(
            select(TipMenuItem).where(TipMenuItem.creator_id == creator.id, TipMenuItem.removed_at.is_(None))
            .execution_options(populate_existing=True))}
        changed, new = [], []
        for position, (label, price) in enumerate(items):
            row = current.pop(label.casefold(), None)
            if row is None:
                new.append(TipMenuItem(creator_id=creator.id, label=label, price_tokens=price, position=position))
            elif (row.label, row.price_tokens, row.position) != (label, price, position):
                changed.append((row, label, price, position))
        # Unlist what goes and what changes first, then list the changed rows with their new
        # values: no row enters the unique (position, label) indexes before its final values.
        for row in [*current.values(), *(c[0] for c in changed)]:
            row.removed_at = func.now()
        db.session.flush()
        for row, label, price, position in changed:
            row.label, row.price_tokens, row.position, row.removed_at = label, price, position, None
        db.session.flush()
        db.session.add_all(new)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return listed_items(creator.id)


def menu_item_id(raw, *, from_form: bool = False) -> int | None:
    """A tip's `menuItemId`: absent (None) or a row id (`InvalidValue` on menuItemId)."""
    if raw is None or (from_form and raw == ""):
        return None
    if from_form:
        raw = validation.ascii_int(raw) if isinstance(raw, str) else None
    return validation.record_id(raw, "menuItemId", "menuItemId must be an item id from the creator's tip menu.")


def item_for_tip(creator_id: int, item_id: int, amount: int) -> TipMenuItem:
    """In a tip's transaction: the listed item `item_id` of `creator_id`, share-locked until
    the tip commits. Raises `NotFound` (menu_item_not_found: unknown, removed or another
    creator's) and `Conflict` (price_changed, with `currentPriceTokens`) unless `amount`
    is its price."""
    item = db.session.execute(select(TipMenuItem).where(TipMenuItem.id == item_id).with_for_update(read=True)
                              .execution_options(populate_existing=True)).scalar_one_or_none()
    if item is None or item.creator_id != creator_id or item.removed_at is not None:
        raise NotFound("That item is not on the creator's tip menu any more.", "menu_item_not_found",
                       field="menuItemId")
    if item.price_tokens != amount:
        raise Conflict(f"The price of “{item.label}” changed: it is now {item.price_tokens:,} tokens.",
                       "price_changed", field="amountTokens", menuItemId=item.id, label=item.label,
                       currentPriceTokens=item.price_tokens)
    return item
