"""The tip modal's form state: presets, custom amount, message, one key per render."""
import uuid

from app.errors import AppError
from app.tips.service import MESSAGE_MAX, TIP_PRESETS, preview_split, tip_amount


def chosen_amount(form) -> str:
    """The custom amount when typed, else the chosen preset (raw text; the service validates)."""
    custom = (form.get("customAmount") or "").strip()
    return custom if custom else (form.get("amountTokens") or "")


def creator_share_for(form) -> int | None:
    """What the creator would receive for the amount in `form`, or None while it is invalid."""
    try:
        return preview_split(tip_amount(chosen_amount(form), from_form=True))[0]
    except AppError:
        return None


def tip_modal_context(creator, *, stream_id=None, call_id=None, amount_choice="100", custom="", message="",
                      error=None, field=None, shortfall=None, owed=None) -> dict:
    return {
        "creator": creator, "stream_id": stream_id, "call_id": call_id, "presets": TIP_PRESETS,
        "message_max": MESSAGE_MAX,
        "amount_choice": amount_choice, "custom": custom, "message": message, "error": error,
        "error_field": field, "shortfall": shortfall, "owed": owed,
        "creator_share": creator_share_for({"amountTokens": amount_choice, "customAmount": custom}),
        "idempotency_key": str(uuid.uuid4()),
    }
