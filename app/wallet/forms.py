"""The buy-tokens sheet: pack buttons and a custom amount, one idempotency key per render."""
import uuid

from flask import current_app


def buy_sheet_context(*, error: str | None = None, custom_value: str = "", success: str | None = None,
                      prefill: int | None = None) -> dict:
    """Everything `wallet/_buy_sheet.html` needs. A fresh key per render: the
    key identifies *this* sheet, so a double click or a retry of the same
    submission is one purchase, and the next purchase gets a new key."""
    return {
        "packs": current_app.config["TOKEN_PACKS"],
        "max_purchase": current_app.config["MAX_PURCHASE_TOKENS"],
        "idempotency_key": str(uuid.uuid4()),
        "error": error,
        "custom_value": custom_value if custom_value else (str(prefill) if prefill else ""),
        "success": success,
    }
