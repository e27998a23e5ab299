"""What the call pages show, read from a call's row and its billing events.

Nothing here changes anything: the call service owns every state change and
charge. `meter` is a template global (registered by app/calls/routes.py), so
the state panel renders the same whether it comes with the page, as an htmx
answer, or pushed over the call's channel by `pushes.call_changed` — which
renders without a request, once for both parties (nothing here depends on who
is looking), and for every call the meter charges (so nothing here queries for
the panel). The receipts and the creator's earnings come from the audit log,
which each page fetches when its panel changes (`activity`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import select

from app import clock
from app.auth.models import User
from app.calls import billing, service
from app.calls.models import BillingEvent, Call
from app.extensions import db

log = logging.getLogger(__name__)

RUNNING = ("active", "paused")
OVER = ("ended", "declined", "expired")
PENDING_SHOWN = 20  # call requests listed in a creator's notifications


STATUS_LABELS = {"requested": "Requested", "active": "Live", "paused": "Paused", "ended": "Ended",
                 "declined": "Declined", "expired": "Expired"}
END_REASONS = {"ended_by_creator": "The creator ended the call.",
               "billing_stopped": "Billing was stopped, which ended the call.",
               "insufficient_funds": "The fan's balance could not pay the next block."}


@dataclass
class Meter:
    """A call's state panel at one moment (the app's clock), from its row alone."""
    label: str  # the status, as the pill says it
    detail: str  # one sentence on why (who paused, how it ended); "" when nothing to add
    active_seconds: int  # talk time so far
    next_charge_in: int | None  # active seconds until the next block is charged (while it runs)
    next_price: int | None  # what that block costs (block 0 while requested)


def meter(call: Call) -> Meter:
    """The state panel's figures. No query, and cheap: the meter pushes this panel for
    every call it charges, thousands per tick."""
    active_ms = billing.active_ms_at(call.active_ms, call.active_since, clock.now())
    next_in = next_price = None
    if call.status in RUNNING or call.status == "requested":
        next_price = billing.block_price(call.blocks_charged, call.rate, call.block_seconds)
    if call.status in RUNNING:
        # Block k is charged when active time reaches its start (block 0 at acceptance).
        next_start = billing.block_start_ms(call.blocks_charged, call.block_seconds)
        next_in = max(0, -(-(next_start - active_ms) // 1000))
    return Meter(label=STATUS_LABELS.get(call.status, call.status), detail=_detail(call),
                 active_seconds=active_ms // 1000, next_charge_in=next_in, next_price=next_price)


def _detail(call: Call) -> str:
    if call.status == "paused" and call.paused_by == "presence":
        fan, creator = call.fan_missing_since is not None, call.creator_missing_since is not None
        who = "both sides' connections" if fan and creator else "the fan's connection" if fan else (
            "the creator's connection")
        return f"Billing paused: {who} dropped. It resumes when they're back."
    if call.status == "paused":
        return f"Billing paused by the {call.paused_by}. Resume to continue."
    if call.status == "ended":
        if call.end_reason == "ended_by_fan":
            return "The fan withdrew the request." if call.accepted_at is None else "The fan ended the call."
        return END_REASONS.get(call.end_reason, "The call is over.")
    if call.status == "declined":
        return "The creator declined the call."
    if call.status == "expired":
        return "The request was not answered in time."
    return ""


@dataclass
class Outcome:
    """How a finished call went, in each party's words, and whom the next steps lead to."""
    fan: User
    creator: User
    talked: bool  # the creator had accepted: talk time and tokens are the news
    can_call_again: bool  # the creator takes calls now: the fan may ask for another one

    @property
    def fan_name(self) -> str:
        return self.fan.display_name

    @property
    def creator_name(self) -> str:
        return self.creator.display_name


def outcome(call: Call) -> Outcome | None:
    """The outcome of a call that is over (None while it runs). Two queries, run once
    per call (when it ends, and on the page's load after that), never by the meter."""
    if call.status not in OVER:
        return None
    who = people(call)
    return Outcome(fan=who.fan, creator=who.creator, talked=call.accepted_at is not None,
                   can_call_again=bool(who.creator.calls_enabled and who.creator.call_rate_tokens_per_min))


def talk_time(seconds) -> str:
    """Talk time in words: 45 → "45 s", 200 → "3 min 20 s", 180 → "3 min", 3725 → "1 h 2 min"."""
    seconds = max(0, int(seconds or 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


REFUND_REASONS = {"media_never_connected": "media never connected", "operator": "refunded by the platform"}


@dataclass
class Activity:
    """The call's billing audit log as receipts, its totals, and what the creator earned."""
    events: list  # oldest first
    charged: int  # tokens the fan paid for blocks
    refunded: int  # tokens given back (block_refunded)
    earned: int  # the creator's shares of the blocks (app.ledger.split of each price), less those refunded

    @property
    def net(self) -> int:
        return self.charged - self.refunded


def activity(events: list[BillingEvent]) -> Activity:
    """`events`: the call's billing events (service.history), oldest first."""
    def total(type_: str, column: str) -> int:
        return sum(getattr(e, column) or 0 for e in events if e.type == type_)
    return Activity(events=events, charged=total("block_charged", "amount"), refunded=total("block_refunded", "amount"),
                    earned=total("block_charged", "creator_share") - total("block_refunded", "creator_share"))


@dataclass
class BlockRow:
    """One charged block of a call, for the operators' refund form."""
    charge: BillingEvent  # its block_charged event
    refund: BillingEvent | None  # its block_refunded event, if any

    @property
    def refundable(self) -> bool:
        return self.charge.amount > 0 and self.refund is None


@dataclass
class OperatorCall:
    """A call as an operator sees it on /platform: who, its blocks, its totals."""
    call: Call
    fan: User
    creator: User
    blocks: list[BlockRow]
    totals: Activity

    @property
    def refundable(self) -> list[int]:
        return [row.charge.block_index for row in self.blocks if row.refundable]


def operator_call(call: Call) -> OperatorCall:
    """`call` (the caller checked the viewer is an operator) with its blocks and totals."""
    events = list(db.session.scalars(select(BillingEvent).where(BillingEvent.call_id == call.id)
                                     .order_by(BillingEvent.id)))
    refunds = {e.block_index: e for e in events if e.type == "block_refunded"}
    rows = [BlockRow(e, refunds.get(e.block_index)) for e in events if e.type == "block_charged"]
    who = people(call)
    return OperatorCall(call, who.fan, who.creator, sorted(rows, key=lambda r: r.charge.block_index),
                        activity(events))


def low_balance(call: Call, balance: int) -> int | None:
    """Tokens the fan lacks to pay the call's next two blocks while it runs (the
    same rule that logs a `low_balance` event at each charge), or None when covered."""
    if call.status not in RUNNING:
        return None
    upcoming = sum(billing.block_price(call.blocks_charged + i, call.rate, call.block_seconds) for i in (0, 1))
    return upcoming - balance if balance < upcoming else None


def people(call: Call) -> SimpleNamespace:
    """The call's fan and creator (User rows)."""
    return SimpleNamespace(fan=db.session.get(User, call.fan_id), creator=db.session.get(User, call.creator_id))


def pending_requests(creator_id: int) -> list[Call]:
    """The creator's unanswered call requests, newest first (those past their timeout
    are left out even before the meter marks them expired)."""
    cutoff = clock.now() - service.REQUEST_TIMEOUT
    return list(db.session.scalars(
        select(Call).where(Call.creator_id == creator_id, Call.status == "requested", Call.requested_at >= cutoff)
        .order_by(Call.id.desc()).limit(PENDING_SHOWN)))


def call_for_channel(channel) -> Call | None:
    if not isinstance(channel, str) or len(channel) > 64:
        return None
    return db.session.scalar(select(Call).where(Call.channel == channel))


def ice_servers() -> list[dict]:
    """`ICE_SERVERS` as RTCPeerConnection's `iceServers`: a JSON list of
    `{urls, username?, credential?}` objects (or bare URL strings); empty → []
    (host candidates only: fine on one network, TURN needed across NATs)."""
    raw = (current_app.config.get("ICE_SERVERS") or "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except ValueError:
        log.warning("ICE_SERVERS is not JSON; calls use no STUN/TURN server")
        return []
    if not isinstance(servers, list):
        log.warning("ICE_SERVERS must be a JSON list; calls use no STUN/TURN server")
        return []
    out = []
    for server in servers:
        if isinstance(server, str):
            server = {"urls": server}
        if isinstance(server, dict) and isinstance(server.get("urls"), (str, list)):
            out.append({k: v for k, v in server.items() if k in ("urls", "username", "credential")})
    return out


def duration(seconds) -> str:
    """Talk time: 75 → "1:15", 3725 → "1:02:05"."""
    seconds = max(0, int(seconds or 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
