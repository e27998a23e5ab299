"""Tip modal (HTMX): open, preview the split, send."""
from flask import Blueprint, g, make_response, render_template, request
from flask_login import current_user, login_required

from app.auth.models import User
from app.errors import AccountRestricted, AppError, InsufficientFunds, NotFound
from app.extensions import db
from app.http import int_arg, request_idempotency_key
from app.protections.service import confirm_value
from app.tipmenu.service import menu_item_id
from app.tips import service
from app.tips.forms import amount_context, amount_preview, chosen_amount, funds_check, tip_modal_context
from app.wallet.service import wallet_balance
from app.tips.limits import tip_limit

bp = Blueprint("tips", __name__)


def _creator_or_404(creator_id):
    creator = db.session.get(User, creator_id) if creator_id else None
    if creator is None or not creator.is_creator:
        raise NotFound("No such creator.", "creator_not_found")
    return creator


@bp.get("/tips/new")
@login_required
def new():
    creator = _creator_or_404(int_arg(request.args, "creator"))
    return render_template("tips/_modal.html", **tip_modal_context(
        creator, balance=wallet_balance(current_user), stream_id=int_arg(request.args, "stream"),
        call_id=int_arg(request.args, "call"), fan=current_user, focus_item=int_arg(request.args, "item")))


@bp.get("/tips/preview")
def preview():
    """“Creator receives N” for the amount being chosen (the split rule stays in one place),
    or why the amount typed can't be sent."""
    share, error = amount_preview(request.args)
    return render_template("tips/_preview.html", creator_share=share, preview_error=error)


@bp.get("/tips/amount")
@login_required
def amount_field():
    """The modal's amount field again, once the wallet changed (a top-up from inside the
    modal): the new balance, and the shortfall error only while it still applies."""
    args, balance = request.args, wallet_balance(current_user)
    error, shortfall = funds_check(args, balance)
    return render_template("tips/_amount.html", **amount_context(
        balance=balance, amount_choice=(args.get("amountTokens") or "")[:32], custom=(args.get("customAmount") or "")[:32],
        error=error, field="amountTokens" if error else None, shortfall=shortfall))


@bp.post("/tips/send")
@login_required
@tip_limit
def send():
    form = request.form
    creator = _creator_or_404(int_arg(form, "toCreatorId"))
    stream_id, call_id = int_arg(form, "streamId"), int_arg(form, "callId")
    state = dict(stream_id=stream_id, call_id=call_id, amount_choice=(form.get("amountTokens") or "")[:32],
                 custom=(form.get("customAmount") or "")[:32], message=(form.get("message") or "")[:2000],
                 fan=current_user)
    amount = item_id = None
    try:
        amount = service.tip_amount(chosen_amount(form), from_form=True)
        item_id = menu_item_id(form.get("menuItemId"), from_form=True)
        message = service.tip_message(form.get("message"))
        result = service.send_tip(current_user._get_current_object(), creator.id, amount, message,
                                  _context(stream_id, call_id), request_idempotency_key(), menu_item_id=item_id,
                                  confirmed=confirm_value(form.get("confirm"), from_form=True))
    except InsufficientFunds as err:
        return render_template("tips/_modal.html", **tip_modal_context(
            creator, balance=wallet_balance(current_user), error=err.message, field="amountTokens",
            shortfall=err.required, **state)), 402
    except AccountRestricted as err:
        return render_template("tips/_modal.html", **tip_modal_context(
            creator, balance=wallet_balance(current_user), owed=err.owed, **state)), err.status
    except AppError as err:
        if err.code in ("price_changed", "confirmation_required"):
            # Asked above the same form: the item's new price, or "send N tokens?".
            asked = (dict(price_changed=err.extra) if err.code == "price_changed"
                     else dict(confirm={"amount": amount, "menu_item_id": item_id}))
            return render_template("tips/_modal.html", **tip_modal_context(
                creator, balance=wallet_balance(current_user), **asked, **state)), err.status
        field = err.field if err.field in ("message", "amountTokens") else "amountTokens"
        return render_template("tips/_modal.html", **tip_modal_context(
            creator, balance=wallet_balance(current_user), error=err.message, field=field,
            **state)), err.status
    # The confirmation above the same form, ready for the next tip (same amount, a new key).
    state["message"] = ""
    return render_template("tips/_modal.html", **tip_modal_context(
        creator, balance=result.new_balance, sent=result.tip, **state))


def _context(stream_id, call_id) -> dict | None:
    """Where the modal was opened: a stream page, a call page, or neither."""
    if call_id:
        return {"callId": call_id}
    return {"streamId": stream_id} if stream_id else None


@bp.get("/overlay/<secret>")
def overlay(secret):
    """The OBS browser source: transparent, tips only. The one framable page."""
    creator = service.creator_for_overlay(secret)
    if creator is None:
        raise NotFound("No such overlay.", "overlay_not_found")
    resp = make_response(render_template("tips/overlay.html", secret=secret))
    g.framable = True  # no X-Frame-Options and CSP frame-ancestors *: OBS embeds it
    resp.headers["Referrer-Policy"] = "no-referrer"  # the URL is the secret
    return resp
