"""The buy-tokens sheet: pack buttons and a custom amount with their prices, one idempotency key per render."""
import uuid

from flask import current_app

from app.errors import InvalidValue
from app.wallet.service import price_of, purchase_amount


def buy_sheet_context(*, error: str | None = None, custom_value: str = "", success: str | None = None,
                      prefill: int | None = None) -> dict:
    """Everything `wallet/_buy_sheet.html` needs. A fresh key per render: the
    key identifies *this* sheet, so a double click or a retry of the same
    submission is one purchase, and the next purchase gets a new key."""
    packs = current_app.config["TOKEN_PACKS"]
    custom_value = custom_value if custom_value else (str(prefill) if prefill else "")
    return {
        "packs": packs,
        "pack_prices": {pack: price_of(pack) for pack in packs},
        "max_purchase": current_app.config["MAX_PURCHASE_TOKENS"],
        "idempotency_key": str(uuid.uuid4()),
        "error": error,
        "custom_value": custom_value,
        **custom_price_context(custom_value),
        "success": success,
    }


def custom_price_context(raw: str) -> dict:
    """`wallet/_custom_price.html`'s context: the price of the custom amount typed
    so far (when it is one the sheet would sell, read as the purchase reads it),
    and the price of one token."""
    try:
        amount = purchase_amount(raw, from_form=True)
    except InvalidValue:
        amount = None
    return {"custom_amount": amount, "custom_price": price_of(amount) if amount else None,
            "token_price": price_of(1)}
