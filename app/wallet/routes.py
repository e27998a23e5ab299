"""Pages: /wallet (balance, buy sheet, purchases, history) and receipts."""
from urllib.parse import urlsplit

from flask import Blueprint, make_response, render_template, request, url_for
from flask_login import current_user, login_required

from app.errors import AppError
from app.http import int_arg, is_htmx, redirect_to, render, request_idempotency_key
from app.wallet import service
from app.wallet.forms import buy_sheet_context, custom_price_context
from app.wallet.limits import purchase_limit

bp = Blueprint("wallet", __name__)


def _htmx_page_path() -> str:
    """Path of the page an htmx request came from (the sheet also opens inside the tip
    modal); "" when the header is missing or no URL (`http://[` makes urlsplit raise)."""
    try:
        return urlsplit(request.headers.get("HX-Current-URL", "")).path
    except ValueError:
        return ""


def _page_arg() -> int:
    return int_arg(request.args, "page", 1, maximum=999_999)


def _wallet_context(highlight: int | None = None) -> dict:
    """What the /wallet page shows besides the buy sheet."""
    return dict(balances=service.balances(current_user), history=service.history(current_user, _page_arg()),
                purchases=service.recent_purchases(current_user, highlight), highlight=highlight)


@bp.get("/wallet")
@login_required
def wallet():
    """The wallet; `?purchase=<id>` (Checkout's way back) highlights that purchase,
    and `?next=<path>` offers to go back to the page the tokens were bought from."""
    prefill = int_arg(request.args, "topup", maximum=999_999)
    return render_template("wallet/wallet.html", **_wallet_context(int_arg(request.args, "purchase")),
                           back_to=service.back_path(request.args.get("next")), **buy_sheet_context(prefill=prefill))


@bp.get("/wallet/history")
@login_required
def history():
    return render("wallet/wallet.html", "wallet/_history.html", **_wallet_context(), **buy_sheet_context())


@bp.get("/wallet/buy")
@login_required
def buy_sheet():
    """The buy-tokens sheet alone (other pages open it, e.g. prefilled with a shortfall)."""
    prefill = int_arg(request.args, "amount", maximum=999_999)
    return render_template("wallet/_buy_sheet.html", **buy_sheet_context(prefill=prefill))


@bp.get("/wallet/price")
@login_required
def price():
    """The custom amount's price as the buyer types it (the buy sheet asks)."""
    return render_template("wallet/_custom_price.html", **custom_price_context(request.args.get("amountTokens", "")))


@bp.post("/wallet/purchase")
@login_required
@purchase_limit
def purchase():
    """Buy a pack or a custom amount. Paid at once (demo): the sheet again with the
    new balance. Paid at Checkout (Stripe): the browser goes there (htmx:
    HX-Redirect; a plain form: 303), and back to /wallet when done."""
    raw = request.form.get("amountTokens", "")
    # Read every input before the purchase commits: nothing after it may fail.
    on_wallet_page = is_htmx() and _htmx_page_path() == "/wallet"
    try:
        amount = service.purchase_amount(raw, from_form=True)
        # The sheet opened inside a stream's or a call's modal: Checkout's way back offers that page.
        result = service.purchase_tokens(current_user, amount, request_idempotency_key(),
                                         return_to=_htmx_page_path() if is_htmx() else None)
    except AppError as err:
        return render("wallet/wallet.html", "wallet/_buy_sheet.html", err.status, **_wallet_context(),
                      **buy_sheet_context(error=err.message, custom_value=raw[:32]))
    if result.at_checkout:
        # A replay after the payment settled has nothing left to pay: show where it stands.
        return redirect_to(result.checkout_url or url_for("wallet.wallet", purchase=result.purchase.id))
    success = f"Added {result.purchase.amount_tokens:,} tokens to your wallet."
    context = dict(**_wallet_context(), **buy_sheet_context(success=success))
    if is_htmx():
        # The sheet, plus the balance (and, on /wallet itself, purchases and history) out-of-band;
        # `balance-changed` lets whatever opened the sheet refresh itself (the ticket gate).
        resp = make_response(render_template("wallet/_purchase_done.html",
                                             on_wallet_page=on_wallet_page, **context))
        resp.headers["HX-Trigger"] = "balance-changed"
        return resp
    return render_template("wallet/wallet.html", **context)


@bp.get("/wallet/receipts/<int:transfer_id>")
@login_required
def receipt(transfer_id):
    return render_template("wallet/receipt.html", **service.receipt(current_user, transfer_id))
