"""The fan's daily spending cap on /wallet (HTMX form): set, change or remove it."""
from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from app.errors import InvalidValue
from app.http import is_htmx, redirect_to
from app.protections import service

bp = Blueprint("protections", __name__)


def limit_context(value: str | None = None, *, error: str | None = None, saved: bool = False) -> dict:
    """What protections/_limit_form.html renders: the cap (as typed, or as set), today's
    spending and what is left, the error, and whether it was just saved."""
    limits = service.limits_of(current_user)
    cap, spent = limits["dailySpendTokens"], limits["spentTodayTokens"]
    if value is None:
        value = "" if cap is None else str(cap)
    return {"limit_value": value, "limit_cap": cap, "limit_spent": spent,
            "limit_left": None if cap is None else max(cap - spent, 0), "limit_error": error, "limit_saved": saved,
            "limit_max": service.LIMIT_MAX}


bp.add_app_template_global(limit_context, "spend_limit_form")


@bp.post("/wallet/limits")
@login_required
def set_limit():
    raw = (request.form.get("dailySpendTokens") or "")[:32]
    template = "protections/_limit_form.html" if is_htmx() else "protections/page.html"
    try:
        service.set_daily_limit(current_user, raw, from_form=True)
    except InvalidValue as err:
        return render_template(template, **limit_context(raw, error=err.message)), err.status
    if not is_htmx():
        return redirect_to(url_for("wallet.wallet") + "#spend-limit")
    return render_template(template, **limit_context(saved=True))
