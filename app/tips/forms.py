"""The tip modal's form state: presets, custom amount, message, one key per render."""
import uuid

from app.errors import AppError, InsufficientFunds
from app.protections import service as protections
from app.tipmenu.service import listed_items
from app.tips.service import MESSAGE_MAX, TIP_PRESETS, preview_split, tip_amount


def chosen_amount(form) -> str:
    """The custom amount when typed, else the chosen preset (raw text; the service validates)."""
    custom = (form.get("customAmount") or "").strip()
    return custom if custom else (form.get("amountTokens") or "")


def creator_share_for(form) -> int | None:
    """What the creator would receive for the amount in `form`, or None while it is invalid."""
    return amount_preview(form)[0]


def amount_preview(form) -> tuple[int | None, str | None]:
    """`(creator share, None)` for a valid amount in `form`; `(None, why not)` for an amount
    typed (or sent) but invalid; `(None, None)` while none is chosen."""
    raw = chosen_amount(form)
    if not raw:
        return None, None
    try:
        return preview_split(tip_amount(raw, from_form=True))[0], None
    except AppError as err:
        return None, err.message


def funds_check(form, balance: int) -> tuple[str | None, int | None]:
    """`(error, shortfall)` while the valid amount in `form` is more than `balance`, else
    `(None, None)`: the modal's amount field, re-read after a top-up, keeps the error only
    while it still applies."""
    try:
        amount = tip_amount(chosen_amount(form), from_form=True)
    except AppError:
        return None, None
    if amount <= balance:
        return None, None
    short = InsufficientFunds(amount - balance)
    return short.message, short.required


def amount_context(*, balance, amount_choice="100", custom="", error=None, field=None, shortfall=None) -> dict:
    """What tips/_amount.html (the modal's amount field) renders."""
    share, invalid = amount_preview({"amountTokens": amount_choice, "customAmount": custom})
    return {
        "presets": TIP_PRESETS, "balance": balance, "amount_choice": amount_choice, "custom": custom,
        "error": error, "error_field": field, "shortfall": shortfall, "creator_share": share,
        # The field's own error already says what is wrong: the preview doesn't repeat it.
        "preview_error": None if field == "amountTokens" else invalid,
    }


def tip_modal_context(creator, *, balance, stream_id=None, call_id=None, amount_choice="100", custom="",
                      message="", error=None, field=None, shortfall=None, owed=None, sent=None, fan=None,
                      price_changed=None, confirm=None, focus_item=None) -> dict:
    """The modal: the creator's tip menu, the amount field, the message, and `sent`, the tip
    just sent (its confirmation shows above a form ready for the next one). `price_changed`
    (the 409's `{menuItemId, label, currentPriceTokens}`) and `confirm` (`{amount,
    menu_item_id}` of a large tip) ask the fan to confirm above the form. With `fan`, what
    their daily spending cap leaves today."""
    limits = protections.limits_of(fan) if fan is not None and fan.daily_spend_limit_tokens is not None else None
    return {
        **amount_context(balance=balance, amount_choice=amount_choice, custom=custom, error=error, field=field,
                         shortfall=shortfall),
        "creator": creator, "stream_id": stream_id, "call_id": call_id, "message_max": MESSAGE_MAX,
        "message": message, "owed": owed, "sent": sent, "idempotency_key": str(uuid.uuid4()),
        "menu": listed_items(creator.id), "confirm_over": protections.confirm_threshold(),
        "price_changed": price_changed, "confirm": confirm, "focus_item": focus_item,
        "spend_left": None if limits is None else max(limits["dailySpendTokens"] - limits["spentTodayTokens"], 0),
    }
