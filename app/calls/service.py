"""Pay-per-minute calls: settings, requests, the billing clock and metering.

Every state change and charge locks the call's row, brings its billing up to
the moment of the change (`_bill_until`), then applies the change, in one
transaction; events are published after the commit. Metering is idempotent:
block k of call c is the ledger transfer `call:<c>:block:<k>` plus one
`block_charged` event (a unique index), written with the row locked, so the
worker's cron, `POST /api/billing/meter`, a state change and a restart after
a crash can all run at once and each block is still charged exactly once.

Time comes from `clock.now()` (app/clock.py; tests inject one), never from sleeping.
"""
from __future__ import annotations

import gc
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from types import SimpleNamespace

from flask import current_app
from psycopg.rows import kwargs_row
from sqlalchemy import select

from app import clock, ledger, validation
from app.auth.models import User
from app.auth.service import require_creator
from app.calls import billing, pushes, refunds
from app.calls.models import CHANNEL_PREFIX, BillingEvent, Call, locked_call
from app.errors import Conflict, Forbidden, InsufficientFunds, InvalidValue, NotFound
from app.extensions import db, driver_connection
from app.protections import service as protections
from app.realtime.bus import Publisher
from app.wallet.pushes import balance_changed, balance_messages, earnings_changed
from app.wallet.reversals import refuse_if_owing

OPEN_STATUSES = ("requested", "active", "paused")
REQUEST_TIMEOUT = timedelta(minutes=2)  # an unanswered request expires
METER_BATCH = 500
RATE_MAX = 100_000


# ---- creator settings -----------------------------------------------------------------

def update_settings(creator, rate, enabled, *, from_form: bool = False) -> dict:
    """Set the creator's per-minute rate (1..100,000) and whether calls are open; commits."""
    require_creator(creator, "Only creators take calls.")
    errors = validation.Errors()
    rate = errors.check("callRateTokensPerMin", validation.token_amount, rate, "callRateTokensPerMin",
                        maximum=RATE_MAX, from_form=from_form)
    if not isinstance(enabled, bool):
        errors.add("callsEnabled", "callsEnabled must be true or false.")
    errors.raise_if_any()
    creator.call_rate_tokens_per_min, creator.calls_enabled = rate, enabled
    db.session.commit()
    return settings_of(creator)


def settings_of(creator) -> dict:
    return {"callRateTokensPerMin": creator.call_rate_tokens_per_min, "callsEnabled": bool(creator.calls_enabled)}


def minimum_balance(rate: int) -> int:
    """What a fan must hold to start a call: its first two blocks."""
    b = current_app.config["BILLING_BLOCK_SECONDS"]
    return billing.block_price(0, rate, b) + billing.block_price(1, rate, b)


# ---- requests ----------------------------------------------------------------------------

def init_call(fan, creator_id, confirmed_rate=None) -> Call:
    """A fan asks a creator for a call at the creator's current rate; commits and
    notifies the creator. `confirmed_rate`, when given, must equal that rate.
    Raises `InsufficientFunds` below the first two blocks' price, `Forbidden`
    (spend_limit_reached) when the fan's daily cap can't take them, and `AccountRestricted`
    while the fan owes tokens after a refund or chargeback."""
    validation.record_id(creator_id, "creatorId", "creatorId must be a creator's id.")
    if creator_id == fan.id:
        raise InvalidValue("You can't call yourself.", "self_call", field="creatorId")
    creator = db.session.get(User, creator_id)
    if creator is None:
        raise NotFound("No such creator.", "creator_not_found")
    if not creator.is_creator:
        raise InvalidValue("Only creators take calls.", "not_a_creator", field="creatorId")
    rate = creator.call_rate_tokens_per_min
    if not creator.calls_enabled or not rate:
        raise Conflict(f"{creator.display_name} is not taking calls right now.", "calls_disabled")
    if confirmed_rate is not None:
        if isinstance(confirmed_rate, bool) or not isinstance(confirmed_rate, int):
            raise InvalidValue("rate_tokens_per_min must be an integer.", field="rate_tokens_per_min")
        if confirmed_rate != rate:
            raise Conflict(f"The rate is now {rate:,} tokens per minute; confirm the new rate to call.",
                           "rate_changed", rate=rate)
    needed = minimum_balance(rate)
    # A running call is not stopped by the fan's daily cap; a request needs room for two blocks.
    protections.check_allows(fan, needed, "A call's first two blocks")
    balance = ledger.balance_of(ledger.account_for(fan.id, "wallet"))
    if balance < needed:
        refuse_if_owing(fan.id)  # a fan who owes has an empty wallet: asked only once it is short
        raise InsufficientFunds(required=needed - balance, message=(
            f"A call needs {needed:,} tokens to start (its first two blocks): {needed - balance:,} more needed."))
    # The fan's row lock makes "no open call yet" hold until this one is written (a
    # partial unique index backs it up: one open call per fan).
    db.session.execute(select(User.id).where(User.id == fan.id).with_for_update())
    open_call = db.session.scalar(select(Call.id).where(Call.fan_id == fan.id, Call.status.in_(OPEN_STATUSES)))
    if open_call is not None:
        db.session.rollback()
        raise Conflict("You already have a call in progress.", "call_in_progress", callId=open_call)
    now = clock.now()
    # Nobody is present until their call page says so (presence_changed).
    call = Call(fan_id=fan.id, creator_id=creator.id, rate=rate,
                block_seconds=current_app.config["BILLING_BLOCK_SECONDS"],
                channel=f"{CHANNEL_PREFIX}{secrets.token_urlsafe(12)}", requested_at=now,
                fan_missing_since=now, creator_missing_since=now)
    db.session.add(call)
    db.session.commit()
    _announce(call)
    return call


def get_call_for(user, call_id) -> Call:
    """The call, for one of its two parties only (`NotFound` / `Forbidden` otherwise)."""
    call = db.session.get(Call, call_id) if validation.is_record_id(call_id) else None
    if call is None:
        raise NotFound("No such call.", "call_not_found")
    if user.id not in (call.fan_id, call.creator_id):
        raise Forbidden("Only the two people on a call can see or change it.", "not_a_participant")
    return call


def _party(user, call: Call) -> str:
    return "fan" if user.id == call.fan_id else "creator"


# ---- state changes -----------------------------------------------------------------------

@dataclass
class Outcome:
    """What one billing pass did (for the meter's totals and the events to publish)."""
    blocks: int = 0
    ended: bool = False
    balances: dict = field(default_factory=dict)  # fan id -> wallet balance after the last charge
    earned: set = field(default_factory=set)  # creators whose earnings changed (their nav pill)
    events: list = field(default_factory=list)  # billing events to write (`_write_events`), in order


def _change(user, call_id, action: str) -> Call:
    """Run `action` on a participant's call with its row locked; commits, publishes."""
    get_call_for(user, call_id)
    try:
        call = locked_call(call_id)
        now = clock.now()
        outcome = _bill_until(call, now)
        if call.status in ("ended", "declined", "expired") and not outcome.ended:
            raise Conflict(f"This call is {call.status}.", "call_over")
        if not outcome.ended:
            _ACTIONS[action](call, _party(user, call), now, outcome)
        _write_events([outcome])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _publish(call, outcome)
    return call


def _accept(call: Call, party: str, now: datetime, outcome: Outcome) -> None:
    if party != "creator":
        raise Forbidden("Only the creator accepts a call.", "not_the_creator")
    if call.status == "requested" and call.requested_at < now - REQUEST_TIMEOUT:
        raise Conflict("This request expired before it was accepted.", "call_expired")
    if call.status != "requested":
        raise Conflict(f"This call is already {call.status}.", "invalid_call_status")
    call.status, call.accepted_at, call.active_since = "active", now, now
    # Presence is counted from acceptance: each side's page must be there within the grace.
    call.fan_missing_since = call.fan_missing_since and now
    call.creator_missing_since = call.creator_missing_since and now
    _note_media(call, now)  # both pages connected before the accept: block 0 starts with media up
    _bill_until(call, now, outcome)  # block 0 is charged at acceptance


def _decline(call: Call, party: str, now: datetime, outcome: Outcome) -> None:
    if party != "creator":
        raise Forbidden("Only the creator declines a call.", "not_the_creator")
    if call.status != "requested":
        raise Conflict(f"This call is already {call.status}.", "invalid_call_status")
    call.status, call.ended_at = "declined", now


def _end(call: Call, party: str, now: datetime, outcome: Outcome) -> None:
    _finish(call, now, f"ended_by_{party}", outcome)  # a request withdrawn or a call hung up


def _pause(call: Call, party: str, now: datetime, outcome: Outcome) -> None:
    if call.status == "requested":
        raise Conflict("The call hasn't started.", "invalid_call_status")
    if call.status == "active":
        _stop_clock(call, now, party, outcome)


def _resume(call: Call, party: str, now: datetime, outcome: Outcome) -> None:
    if call.status == "requested":
        raise Conflict("The call hasn't started.", "invalid_call_status")
    if call.status == "paused":
        call.status, call.active_since, call.paused_by = "active", now, None
        _event(outcome, call, "resumed", reason=party)
        _bill_until(call, now, outcome)


def _stop(call: Call, party: str, now: datetime, outcome: Outcome) -> None:
    if call.status == "requested":
        raise Conflict("The call hasn't started.", "invalid_call_status")
    _event(outcome, call, "stopped", reason=party)
    _finish(call, now, "billing_stopped", outcome)


_ACTIONS = {"accept": _accept, "decline": _decline, "end": _end, "pause": _pause, "active": _resume,
            "stop": _stop}


def accept(user, call_id) -> Call:
    return _change(user, call_id, "accept")


def decline(user, call_id) -> Call:
    return _change(user, call_id, "decline")


def end(user, call_id) -> Call:
    return _change(user, call_id, "end")


def pause(user, call_id) -> Call:
    return _change(user, call_id, "pause")


def resume(user, call_id) -> Call:
    return _change(user, call_id, "active")


def stop(user, call_id) -> Call:
    return _change(user, call_id, "stop")


def presence_changed(call_id: int, party: str, present: bool, at: datetime | None = None) -> None:
    """A party's call page (socket and media) came or went. Gone for longer than
    `PRESENCE_GRACE_SECONDS` pauses billing (the meter applies it, from the moment
    the grace ran out); coming back resumes a presence pause at once. The first time
    both are there on a running call is its `media_connected_at`; if that comes after
    the first block was over, block 0 is refunded (app/calls/refunds.py). Commits."""
    now = at or clock.now()
    try:
        call = locked_call(call_id)
        outcome = _bill_until(call, now)
        column = f"{party}_missing_since"
        refunded = refunds.Moved([])
        if present:
            setattr(call, column, None)
            if call.status == "paused" and call.paused_by == "presence" and not _gone_too_long(call, now):
                call.status, call.active_since, call.paused_by = "active", now, None
                _event(outcome, call, "resumed", reason="presence")
                _bill_until(call, now, outcome)
        elif getattr(call, column) is None:
            setattr(call, column, now)
        _write_events([outcome])
        if present and _note_media(call, now):
            refunded = refunds.refund_late_media(call)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _publish(call, outcome)
    refunds.publish(call, refunded)


def _note_media(call: Call, now: datetime) -> bool:
    """Both parties' pages are present (each one's media connected) on a running call:
    the first time, remember when (`media_connected_at`, never cleared). True then."""
    if (call.media_connected_at is None and call.status in ("active", "paused")
            and call.fan_missing_since is None and call.creator_missing_since is None):
        call.media_connected_at = now
        return True
    return False


def _gone_too_long(call: Call, now: datetime) -> bool:
    """Is a party missing for longer than the grace? (Within it, billing runs: a
    short blip pauses nothing, and `_bill_until` pauses when a grace runs out.)"""
    grace = timedelta(seconds=current_app.config["PRESENCE_GRACE_SECONDS"])
    return any(t is not None and t + grace <= now for t in (call.fan_missing_since, call.creator_missing_since))


# ---- billing -----------------------------------------------------------------------------

def _bill_until(call: Call, now: datetime, outcome: Outcome | None = None) -> Outcome:
    """Bring a locked call's billing up to `now`: apply a presence pause whose
    grace ran out (as of that moment), charge every block that has started, end
    the call if one can't be paid, warn when the next two can't be. Idempotent."""
    outcome = outcome or Outcome()
    _bill_many([(call, outcome)], now)
    return outcome


@dataclass
class _Plan:
    call: Call
    outcome: Outcome
    until: datetime  # bill up to here: now, or the moment a presence pause took effect
    pause_at: datetime | None
    wallet: ledger.Account
    earnings: ledger.Account
    balance: int | None = None


def _bill_many(items: list[tuple[Call, Outcome]], now: datetime) -> None:
    """`_bill_until` for many locked calls at once. Block k of every call that
    needs one is posted in the same round (`ledger.transfer_many`: one round trip
    for the lot), then block k+1 of those that still need one, and so on — in
    normal running one round per tick. A refused block ends its call and
    leaves the others alone (a refused transfer writes nothing)."""
    grace = timedelta(seconds=current_app.config["PRESENCE_GRACE_SECONDS"])
    running = [(call, outcome) for call, outcome in items if call.status == "active"]
    # One query per account kind for the lot (then cached for the process).
    wallets = ledger.accounts_for([call.fan_id for call, _outcome in running], "wallet")
    earnings = ledger.accounts_for([call.creator_id for call, _outcome in running], "earnings")
    plans = []
    for call, outcome in running:
        until, pause_at = now, None
        gone = [t for t in (call.fan_missing_since, call.creator_missing_since) if t is not None]
        if gone and max(min(gone) + grace, call.active_since) <= now:
            until = pause_at = max(min(gone) + grace, call.active_since)
        plans.append(_Plan(call, outcome, until, pause_at, wallets[call.fan_id], earnings[call.creator_id]))
    share = current_app.config["CREATOR_SHARE_PERCENT"]
    pending = [p for p in plans if _owed(p)]
    while pending:
        posting = []
        for p in pending:
            k = p.call.blocks_charged
            price = billing.block_price(k, p.call.rate, p.call.block_seconds)
            if price:
                posting.append((p, k, price, ledger.creator_payment(p.wallet, p.earnings, price, share)))
            else:
                _record_block(p, k, 0, None, None)  # logged, moves nothing
        results = ledger.transfer_many([_block_transfer(p, k, payment) for p, k, _price, payment in posting])
        for (p, k, price, payment), result in zip(posting, results, strict=True):
            if isinstance(result, InsufficientFunds):
                _end_unpaid(p.call, k, result.required, p.outcome)
            else:
                _record_block(p, k, price, payment, result)
        pending = [p for p in pending if _owed(p)]
    for p in plans:
        if p.call.status == "active" and p.outcome.blocks:
            _warn_if_low(p)
        if p.call.status == "active" and p.pause_at is not None:
            _stop_clock(p.call, p.pause_at, "presence", p.outcome)


def _owed(p: _Plan) -> bool:
    """Has a block started (by `p.until`) that isn't charged yet?"""
    call = p.call
    if call.status != "active":
        return False
    active = billing.active_ms_at(call.active_ms, call.active_since, p.until)
    return call.blocks_charged < billing.blocks_due(active, call.block_seconds)


def _block_transfer(p: _Plan, k: int, payment: ledger.CreatorPayment) -> ledger.TransferRequest:
    call = p.call
    return ledger.TransferRequest(ledger.TransferKind.CALL_BLOCK, f"call:{call.id}:block:{k}", payment.legs,
                                  {"callId": call.id, "blockIndex": k, "creatorId": call.creator_id})


def _record_block(p: _Plan, k: int, price: int, payment: ledger.CreatorPayment | None,
                  moved: ledger.TransferResult | None) -> None:
    """Block k is paid (`payment`: its legs and shares, `ledger.creator_payment`; None for a free block)."""
    call = p.call
    creator_share, platform_share = (payment.creator_share, payment.platform_share) if payment else (0, 0)
    _event(p.outcome, call, "block_charged", block_index=k, amount=price, creator_share=creator_share,
           platform_share=platform_share, transfer_id=moved.transfer_id if moved else None)
    call.blocks_charged, call.total_charged = k + 1, call.total_charged + price
    p.outcome.blocks += 1
    if moved is not None and p.wallet.id in moved.balances:
        # Pushed to the fan even if this pass then ends the call (the next block unpaid).
        p.balance = p.outcome.balances[call.fan_id] = moved.balances[p.wallet.id]
    if moved is not None:
        p.outcome.earned.add(call.creator_id)


def _warn_if_low(p: _Plan) -> None:
    """Log (once per block) that the wallet can't cover the next two blocks."""
    call = p.call
    balance = ledger.balance_of(p.wallet) if p.balance is None else p.balance
    p.outcome.balances[call.fan_id] = balance
    upcoming = sum(billing.block_price(call.blocks_charged + i, call.rate, call.block_seconds) for i in (0, 1))
    if balance < upcoming and call.low_balance_block != call.blocks_charged:
        call.low_balance_block = call.blocks_charged
        _event(p.outcome, call, "low_balance", block_index=call.blocks_charged, amount=upcoming - balance)


def _end_unpaid(call: Call, k: int, shortfall: int, outcome: Outcome) -> None:
    """Block k can't be paid: the call ends at that block's start, the block unbilled.
    The ledger refused the debit without writing, so nothing needs undoing."""
    call.active_ms = billing.block_start_ms(k, call.block_seconds)
    call.active_since = None
    _event(outcome, call, "insufficient_funds", block_index=k, amount=shortfall)
    _finish(call, None, "insufficient_funds", outcome)
    outcome.ended = True


def _stop_clock(call: Call, at: datetime, cause: str, outcome: Outcome) -> None:
    call.active_ms = billing.active_ms_at(call.active_ms, call.active_since, at)
    call.status, call.active_since, call.paused_by = "paused", None, cause
    _event(outcome, call, "paused", reason=cause)


def _finish(call: Call, now: datetime | None, reason: str, outcome: Outcome) -> None:
    if call.active_since is not None and now is not None:
        call.active_ms = billing.active_ms_at(call.active_ms, call.active_since, now)
    call.status, call.active_since, call.paused_by, call.end_reason = "ended", None, None, reason
    call.ended_at = now or clock.now()
    _event(outcome, call, "ended", reason=reason)


_EVENT_FIELDS = ("block_index", "amount", "creator_share", "platform_share", "reason", "transfer_id")


def _event(outcome: Outcome, call: Call, type_: str, **fields) -> None:
    """Log a billing event; `_write_events` writes it with the transaction's other changes."""
    outcome.events.append((call.id, type_, *(fields.get(name) for name in _EVENT_FIELDS)))


# Arrays go as binary parameters (%b), a third of text's cost to dump: thousands of rows a batch.
_INSERT_EVENTS = (
    "INSERT INTO billing_events (call_id, type, block_index, amount, creator_share, platform_share, reason, "
    "transfer_id) SELECT c, t, b, a, cs, ps, r, tr FROM unnest(%b::bigint[], %b::text[], %b::int[], "
    "%b::bigint[], %b::bigint[], %b::bigint[], %b::text[], %b::bigint[]) WITH ORDINALITY "
    "AS e(c, t, b, a, cs, ps, r, tr, n) ORDER BY n")


def _write_events(outcomes) -> None:
    """Insert the outcomes' billing events in one statement, in the order they happened
    (ids follow the order: receipts are listed by id)."""
    rows = [event for outcome in outcomes for event in outcome.events]
    if rows:
        driver_connection().execute(_INSERT_EVENTS, [list(column) for column in zip(*rows, strict=True)])


@dataclass
class MeterResult:
    metered: int = 0
    blocks_charged: int = 0
    calls_ended: int = 0

    def to_dict(self) -> dict:
        return {"metered": self.metered, "blocksCharged": self.blocks_charged, "callsEnded": self.calls_ended}


def meter(at: datetime | None = None, batch: int = METER_BATCH, threads: int | None = None) -> MeterResult:
    """Charge every due block of every running call, in batches of `batch` calls
    (rows another meter holds are skipped: it is billing them), and expire
    unanswered requests. Safe to run concurrently and repeatedly.

    The same rules as a state change (`_bill_many`), with set-based I/O: a batch
    is one locking read of its call rows (plain rows, not ORM objects), one
    `ledger.transfer_many` per round of blocks, one insert of its billing events
    and one update of its counters, then the commit. Only calls billing has
    something to do for are locked and read (`_Claims`): a tick between block
    boundaries costs one index scan, not a lock per call. `threads` (default
    `METER_THREADS`) bill batches side by side, each on its own connection, so one
    batch's Python runs while another's SQL does; they take batches in turn from
    one cursor, so no call is read twice in a tick. Pages' updates are rendered
    and published on a background thread (`realtime.bus.Publisher`) as batches commit;
    all are sent before this returns. `metered` counts the running calls the tick
    went over (due or not), as it always has."""
    now = at or clock.now()
    threads = threads or current_app.config["METER_THREADS"]
    grace = timedelta(seconds=current_app.config["PRESENCE_GRACE_SECONDS"])
    claims = _Claims(batch, now, now - grace)
    with _collector_paused(), Publisher() as publisher:
        if threads == 1:
            results = [_meter_batches(now, claims, publisher)]
        else:
            app = current_app._get_current_object()

            def helper() -> MeterResult:
                with app.app_context():  # its own session, so its own connection
                    return _meter_batches(now, claims, publisher)
            with ThreadPoolExecutor(threads - 1, thread_name_prefix="meter") as pool:
                helpers = [pool.submit(helper) for _ in range(threads - 1)]
                results = [_meter_batches(now, claims, publisher)] + [h.result() for h in helpers]
    _expire_requests(now)
    return MeterResult(*(sum(column) for column in zip(*(astuple(r) for r in results))))


_paused = {"ticks": 0, "was_enabled": True}
_paused_lock = threading.Lock()


@contextmanager
def _collector_paused():
    """No automatic cyclic garbage collection while a tick runs (reference counting
    still frees everything at once). A tick makes ~20 container objects per call that
    live until its batch is published; the collector's full passes, triggered by them,
    each walk the whole heap: at 100,000 calls they were a third of the tick's CPU
    and grew faster than the calls. A tick makes little cyclic garbage; the first
    collection after it takes that. Ticks of one process may overlap (threads): the
    last one out turns the collector back on, and only if it was on before."""
    with _paused_lock:
        if _paused["ticks"] == 0:
            _paused["was_enabled"] = gc.isenabled()
            gc.disable()
        _paused["ticks"] += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused["ticks"] -= 1
            if _paused["ticks"] == 0 and _paused["was_enabled"]:
                gc.enable()


class _Claims:
    """Hands out a tick's batches. It walks the running calls in id order, a window
    of `size` at a time (an index scan, no locks), and keeps those billing has
    something to do for at `now`: a block has started that isn't charged
    (`billing.blocks_due`, the same arithmetic in SQL) or a party has been gone past
    the grace (a presence pause to apply). Up to `size` of those are then locked and
    read (`SKIP LOCKED`: rows another meter holds are its to bill). The filter only
    spares calls: `_bill_many` decides on the locked, fresh row. One claim at a
    time, so the meter's threads never read a call twice."""

    def __init__(self, size: int, now: datetime, gone_before: datetime):
        self.size, self.after, self._lock = size, 0, threading.Lock()
        self._params = {"now": now, "gone_before": gone_before, "size": size}
        self.exhausted = False

    def next(self) -> tuple[list[SimpleNamespace], int]:
        """(the next batch's locked call rows, how many running calls this claim went
        over that are not another meter's). The rows may be none (nothing due, or all
        another meter's); `exhausted` says when the walk has reached the last call."""
        with self._lock:
            conn = driver_connection()
            due, passed = [], 0
            while len(due) < self.size and not self.exhausted:
                window = conn.execute(_WINDOW, {**self._params, "after": self.after}).fetchall()
                self.exhausted = len(window) < self.size
                for call_id, owed in window:
                    self.after, passed = call_id, passed + 1
                    if owed:
                        due.append(call_id)
                        if len(due) == self.size:
                            self.exhausted = False  # the window's rest is the next claim's
                            break
            calls = conn.cursor(row_factory=kwargs_row(SimpleNamespace)).execute(
                _LOCK_DUE, (due,)).fetchall() if due else []
        return calls, passed - len(due) + len(calls)


# Is a block due (`billing.blocks_due` > blocks_charged: active ms ≥ blocks_charged·B·1000,
# in exact numeric epoch arithmetic) or a presence pause to apply, at %(now)s?
_WINDOW = (
    "SELECT id, (greatest(extract(epoch FROM %(now)s::timestamptz) - extract(epoch FROM active_since), 0) * 1000 "
    "            >= blocks_charged::numeric * block_seconds * 1000 - active_ms "
    "         OR coalesce(least(fan_missing_since, creator_missing_since) <= %(gone_before)s, false)) "
    "  FROM calls WHERE status = 'active' AND id > %(after)s ORDER BY id LIMIT %(size)s")
_LOCK_DUE = "SELECT * FROM calls WHERE id = ANY(%s) AND status = 'active' ORDER BY id FOR UPDATE SKIP LOCKED"


def _meter_batches(now: datetime, claims: _Claims, publisher) -> MeterResult:
    """Bill batches from `claims` until none is left, committing each; this thread's tally."""
    result = MeterResult()
    while True:
        calls, passed = claims.next()
        result.metered += passed
        if not calls:
            if claims.exhausted:
                break
            continue  # every due call of that claim was another meter's
        outcomes = [(call, Outcome()) for call in calls]
        _bill_many(outcomes, now)
        changed = [(call, outcome) for call, outcome in outcomes if outcome.events]
        _write_events([outcome for _call, outcome in changed])
        _write_counters(changed)
        db.session.commit()
        for _call, outcome in changed:
            result.blocks_charged += outcome.blocks
            result.calls_ended += outcome.ended
        publisher.submit(partial(_meter_messages, changed))
    db.session.rollback()  # the last claim's transaction
    return result


def _meter_messages(changed) -> list[tuple[str, str]]:
    """The pages' updates for a committed batch: each call's figures (or its whole
    panel when its status changed) and the fan's new balance; the creators' earnings
    figures follow from a job (`earnings_changed`), never read here per call."""
    messages = []
    for call, outcome in changed:
        # Still active: only blocks were charged (the meter pauses and ends, never resumes).
        messages += pushes.call_messages(call, figures_only=call.status == "active")
        for fan_id, balance in outcome.balances.items():
            messages += balance_messages(fan_id, balance)
    earnings_changed({creator_id for _, outcome in changed for creator_id in outcome.earned})
    return messages


# What billing changes on a call row (`meter` writes them back for a whole batch).
_BILLING_COLUMNS = ("status", "active_ms", "active_since", "paused_by", "end_reason", "ended_at",
                    "blocks_charged", "total_charged", "low_balance_block")
_UPDATE_CALLS = (
    "UPDATE calls c SET status = u.status, active_ms = u.active_ms, active_since = u.active_since, "
    "paused_by = u.paused_by, end_reason = u.end_reason, ended_at = u.ended_at, "
    "blocks_charged = u.blocks_charged, total_charged = u.total_charged, low_balance_block = u.low_balance_block "
    "FROM unnest(%b::bigint[], %b::text[], %b::bigint[], %b::timestamptz[], %b::text[], %b::text[], "
    "%b::timestamptz[], %b::int[], %b::bigint[], %b::int[]) AS u(id, status, active_ms, active_since, paused_by, "
    "end_reason, ended_at, blocks_charged, total_charged, low_balance_block) WHERE c.id = u.id")


# A batch's usual change: blocks charged and nothing else (3 arrays to dump, not 10).
_UPDATE_CHARGED = (
    "UPDATE calls c SET blocks_charged = u.blocks_charged, total_charged = u.total_charged "
    "FROM unnest(%b::bigint[], %b::int[], %b::bigint[]) AS u(id, blocks_charged, total_charged) WHERE c.id = u.id")


def _write_counters(changed) -> None:
    """Write billing's changes to these (locked, plain-row) calls, given with their
    outcomes: calls whose only events are charged blocks (only `blocks_charged` and
    `total_charged` moved, `_record_block`) in one narrow statement, the others
    (paused, ended, warned) with every billing column in another."""
    charged, other = [], []
    for call, outcome in changed:
        (charged if all(event[1] == "block_charged" for event in outcome.events) else other).append(call)
    conn = driver_connection()
    if charged:
        conn.execute(_UPDATE_CHARGED, [[c.id for c in charged], [c.blocks_charged for c in charged],
                                       [c.total_charged for c in charged]])
    if other:
        columns = [[c.id for c in other]] + [[getattr(c, name) for c in other] for name in _BILLING_COLUMNS]
        conn.execute(_UPDATE_CALLS, columns)


def _expire_requests(now: datetime) -> None:
    stale = list(db.session.scalars(select(Call).where(
        Call.status == "requested", Call.requested_at < now - REQUEST_TIMEOUT).with_for_update(skip_locked=True)))
    for call in stale:
        call.status, call.ended_at = "expired", now
    db.session.commit()
    for call in stale:
        _publish(call, Outcome())


def history(user, call_id) -> list[BillingEvent]:
    call = get_call_for(user, call_id)
    return list(db.session.scalars(select(BillingEvent).where(BillingEvent.call_id == call.id)
                                   .order_by(BillingEvent.id)))


# ---- events ------------------------------------------------------------------------------

def _announce(call: Call) -> None:
    pushes.call_requested(call)


def _publish(call: Call, outcome: Outcome) -> None:
    pushes.call_changed(call)
    for fan_id, balance in outcome.balances.items():
        balance_changed(fan_id, balance)
    earnings_changed(outcome.earned)
