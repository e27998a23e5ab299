"""The tip menu's editor on /creator/settings (HTMX): rows of label and price, added,
removed and moved up or down by round trips that save nothing, then saved at once
(`service.replace_menu`, the JSON API's rule) with each error next to its row's field."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth.service import require_creator
from app.errors import InvalidValue
from app.http import is_htmx, redirect_to
from app.tipmenu import service

bp = Blueprint("tipmenu", __name__)
bp.add_app_template_global(service.listed_items, "tip_menu_of")


@dataclass
class Row:
    label: str
    price: str

    @property
    def blank(self) -> bool:
        return not self.label.strip() and not self.price.strip()


def editor_context(rows: list[Row] | None = None, *, errors: dict | None = None, saved: bool = False,
                   edited: bool = False) -> dict:
    """What tipmenu/_editor.html renders: the rows (the saved menu when None), errors by
    field (`items[2].label`), and whether the rows were just saved or differ from the menu."""
    if rows is None:
        rows = [Row(item.label, str(item.price_tokens)) for item in service.listed_items(current_user.id)]
    return {"menu_rows": rows, "menu_errors": errors or {}, "menu_saved": saved, "menu_edited": edited,
            "menu_max": service.MAX_ITEMS, "menu_label_max": service.LABEL_MAX, "menu_price_max": service.max_price()}


bp.add_app_template_global(editor_context, "tip_menu_editor")


def _posted_rows() -> list[Row]:
    labels, prices = request.form.getlist("label"), request.form.getlist("priceTokens")
    # One more row than a menu holds is enough to say "too many"; nothing posted is echoed long.
    return [Row((label or "")[:200], (price or "")[:32])
            for label, price in list(zip_longest(labels, prices, fillvalue=""))[:service.MAX_ITEMS + 1]]


def _rearranged(rows: list[Row], op: str) -> list[Row]:
    """`add`, `remove-<i>`, `up-<i>`, `down-<i>`: the rows after that edit (nothing saved)."""
    if op == "add":
        return rows + [Row("", "")] if len(rows) < service.MAX_ITEMS else rows
    action, _, index = op.partition("-")
    i = int(index) if index.isascii() and index.isdigit() and len(index) < 3 else -1
    if not 0 <= i < len(rows):
        return rows
    if action == "remove":
        return rows[:i] + rows[i + 1:]
    j = {"up": i - 1, "down": i + 1}.get(action, -1)
    if 0 <= j < len(rows):
        rows[i], rows[j] = rows[j], rows[i]
    return rows


def _editor(status: int = 200, **context):
    template = "tipmenu/_editor.html" if is_htmx() else "tipmenu/page.html"
    return render_template(template, **context), status


@bp.get("/creator/tip-menu")
@login_required
def page():
    """The editor on a page of its own (where the settings page's form goes without JavaScript)."""
    require_creator(current_user)
    return render_template("tipmenu/page.html", **editor_context())


@bp.post("/creator/tip-menu")
@login_required
def edit():
    require_creator(current_user)
    rows, op = _posted_rows(), request.form.get("op") or "save"
    if op != "save":
        return _editor(**editor_context(_rearranged(rows, op), edited=True))
    rows = [row for row in rows if not row.blank]
    try:
        service.replace_menu(current_user, [{"label": r.label, "priceTokens": r.price} for r in rows],
                             from_form=True)
    except InvalidValue as err:
        errors = err.extra.get("errors") or {err.field or "items": err.message}
        return _editor(err.status, **editor_context(rows, errors=errors, edited=True))
    if not is_htmx():
        return redirect_to(url_for("creator.settings") + "#tip-menu")
    return _editor(**editor_context(saved=True))
