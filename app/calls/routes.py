"""Pages of pay-per-minute calls (HTML + htmx): the Call modal and the request
(`GET /calls/new`, `POST /calls`), the call page `/calls/<id>` (video, live
meter, receipts), its buttons (accept, decline, pause, resume, end: the same
service functions as the JSON API) and its activity fragment (receipts, the
creator's earnings, the fan's low-balance warning).

The call page's state panel is `calls/_state.html` around `calls/_meter.html`;
the same templates are pushed by `pushes.call_changed`, so they use only the
template globals registered here (no request, no current user) and no query.
Whenever the panel changes, the page re-fetches `/calls/<id>/activity`.

Operators get a Calls section on /platform (`/platform/calls`, loaded there by
htmx): look a call up by its number, tick blocks (or all that remain), review
what moves, confirm; `refunds.refund_blocks` does it, as for the JSON API.
"""
import uuid

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user, login_required

from app import validation
from app.auth.models import User
from app.auth.service import require_operator
from app.calls import display, refunds, service
from app.errors import AccountRestricted, BadRequest, Conflict, Forbidden, InsufficientFunds, InvalidValue, NotFound
from app.extensions import db
from app.http import int_arg, is_htmx, redirect_to, render, request_idempotency_key
from app.tips.service import recent_tips
from app.wallet.service import wallet_balance

bp = Blueprint("calls", __name__)

# Pushed fragments are rendered without a request: these are globals, not context processors.
bp.add_app_template_global(display.meter, "call_meter")
bp.add_app_template_global(display.people, "call_people")  # the creator's notifications
bp.add_app_template_global(display.pending_requests, "pending_call_requests")
bp.add_app_template_filter(display.duration, "duration")
bp.add_app_template_filter(display.talk_time, "talk_time")
bp.add_app_template_global(display.outcome, "call_outcome")
bp.add_app_template_global(display.REFUND_REASONS, "call_refund_reasons")

_ACTIONS = {"accept": service.accept, "decline": service.decline, "pause": service.pause,
            "resume": service.resume, "end": service.end}


def _creator_or_404(creator_id) -> User:
    creator = db.session.get(User, creator_id) if creator_id else None
    if creator is None or not creator.is_creator:
        raise NotFound("No such creator.", "creator_not_found")
    return creator


def _modal(creator: User, status: int = 200, **extra):
    """The Call modal: the creator's current rate, what a call needs to start, the fan's balance."""
    rate = creator.call_rate_tokens_per_min
    context = dict(creator=creator, rate=rate, taking_calls=bool(creator.calls_enabled and rate),
                   minimum=service.minimum_balance(rate) if rate else None,
                   block_seconds=current_app.config["BILLING_BLOCK_SECONDS"],
                   balance=wallet_balance(current_user), error=None, shortfall=None, open_call_id=None, owed=None)
    context.update(extra)
    return render_template("calls/_modal.html", **context), status


@bp.get("/calls/new")
@login_required
def new():
    return _modal(_creator_or_404(int_arg(request.args, "creator")))


@bp.post("/calls")
@login_required
def request_call():
    """The modal's "Call now": the rate it showed is the price confirmation, so a rate
    changed meanwhile answers 409 with the new one, to confirm again."""
    creator = _creator_or_404(int_arg(request.form, "creatorId"))
    rate = int_arg(request.form, "rate", maximum=999_999)
    try:
        if rate is None:
            raise InvalidValue("Confirm the rate to call.", field="rate")
        call = service.init_call(current_user, creator.id, rate)
    except InsufficientFunds as err:
        return _modal(creator, err.status, error=err.message, shortfall=err.required)
    except AccountRestricted as err:
        return _modal(creator, err.status, owed=err.owed)
    except Forbidden as err:
        if err.code != "spend_limit_reached":
            raise
        return _modal(creator, err.status, error=err.message)  # the fan's own daily cap, in the modal
    except (Conflict, InvalidValue) as err:
        db.session.refresh(creator)  # show the rate as it is now
        return _modal(creator, err.status, error=err.message, open_call_id=err.extra.get("callId"))
    return redirect_to(url_for("calls.show", call_id=call.id))


@bp.get("/calls/<int:call_id>")
@login_required
def show(call_id):
    """The call page, for its two participants only (403 for anyone else)."""
    call = service.get_call_for(current_user, call_id)
    who = display.people(call)
    return render_template("calls/show.html", call=call, other=who.creator if _party(call) == "fan" else who.fan,
                           creator=who.creator, ice_servers=display.ice_servers(),
                           recent=recent_tips(call_id=call.id), **_activity_context(call))


@bp.get("/calls/<int:call_id>/activity")
@login_required
def activity(call_id):
    """The receipts (and the creator's earnings, the fan's low-balance warning), fetched
    by the call page whenever its state panel or the fan's balance changes."""
    call = service.get_call_for(current_user, call_id)
    return render_template("calls/_activity.html", call=call, topup_oob=True, **_activity_context(call))


def _party(call) -> str:
    return "fan" if current_user.id == call.fan_id else "creator"


def _activity_context(call) -> dict:
    party = _party(call)
    balance = wallet_balance(current_user) if party == "fan" else None
    return dict(party=party, activity=display.activity(service.history(current_user, call.id)), balance=balance,
                shortfall=display.low_balance(call, balance) if party == "fan" else None)


@bp.post("/calls/<int:call_id>/<any(accept, decline, pause, resume, end):action>")
@login_required
def change(call_id, action):
    """A button on the call page or in the creator's notifications. htmx gets back
    the fragment it swaps (the state panel, or the notification); accepting from a
    notification, and every plain form post, goes to the call page."""
    call = _ACTIONS[action](current_user, call_id)
    target = request.headers.get("HX-Target", "")
    if is_htmx() and target == f"call-state-{call.id}":
        return render_template("calls/_meter.html", call=call)
    if is_htmx() and target == f"call-request-{call.id}":
        return render_template("calls/_request_body.html", call=call)
    return redirect_to(url_for("calls.show", call_id=call.id))


# ---- operators: refunds on /platform -------------------------------------------------------

def _platform(status: int = 200, **context):
    """The Calls section (a page of its own outside htmx): the lookup form, and the call
    looked up (`view`) with its refund form, confirmation step or outcome."""
    values = dict(lookup_value="", lookup_error=None, view=None, confirm=None, notice=None, error=None,
                  idempotency_key=str(uuid.uuid4()))
    values.update(context)
    return render("calls/platform.html", "calls/_platform.html", status, **values)


@bp.get("/platform/calls")
@login_required
def platform_calls():
    """Operators only: the Calls section, with `?call=<number>` looked up."""
    require_operator(current_user, "Refunding calls")
    raw = request.args.get("call", "").strip().lstrip("#")
    if not raw:
        return _platform()
    call_id = validation.ascii_int(raw)
    if call_id is None:
        return _platform(422, lookup_value=raw[:24], lookup_error="Enter a call number: digits only.")
    try:
        call = refunds.call_for_operator(current_user, call_id)
    except NotFound:
        return _platform(404, lookup_value=raw[:24], lookup_error=f"There is no call #{call_id}.")
    return _platform(lookup_value=str(call.id), view=display.operator_call(call))


@bp.post("/platform/calls/<int:call_id>/refund")
@login_required
def platform_refund(call_id):
    """The refund form: without `confirm`, check the blocks and show what would move;
    with it, refund (idempotent on the form's hidden key). Errors show in the form."""
    call = refunds.call_for_operator(current_user, call_id)
    try:
        blocks = _form_blocks()
        if request.form.get("confirm") != "1":
            return _review(call, blocks)
        result = refunds.refund_blocks(current_user, call.id, blocks, request_idempotency_key())
    except (BadRequest, InvalidValue, Conflict) as err:
        db.session.rollback()
        return _platform(err.status, lookup_value=str(call.id), view=display.operator_call(call), error=err.message)
    return _platform(lookup_value=str(call.id), view=display.operator_call(result.call),
                     notice=_refunded_notice(result))


def _form_blocks() -> list[int] | None:
    """The ticked `blocks` (block indexes), or None for "all remaining" (`all=1`)."""
    if request.form.get("all") == "1":
        return None
    raw = request.form.getlist("blocks")
    blocks = [validation.ascii_int(value, refunds.BLOCK_MAX) for value in raw[:refunds.MAX_BLOCKS + 1]]
    if not blocks or None in blocks:
        raise InvalidValue("Tick the blocks to refund, or choose Refund all remaining.", field="blocks")
    return refunds.block_numbers(blocks)


def _review(call, blocks):
    """The confirmation step: exactly which blocks, and what moves from whom."""
    charges = refunds.refundable(call, blocks)
    if not charges:
        raise InvalidValue("Nothing left to refund: those blocks were already refunded.", field="blocks")
    confirm = dict(blocks=[c.block_index for c in charges], amount=sum(c.amount for c in charges),
                   creator_share=sum(c.creator_share for c in charges),
                   platform_share=sum(c.platform_share for c in charges))
    return _platform(lookup_value=str(call.id), view=display.operator_call(call), confirm=confirm)


def _refunded_notice(result: refunds.Refund) -> str:
    if not result.refunded:
        return "Nothing more was refunded: those blocks had been refunded already."
    numbers = ", ".join(str(k + 1) for k in result.refunded)
    return f"Refunded block{'s' if len(result.refunded) > 1 else ''} {numbers}."
