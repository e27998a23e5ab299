"""The dashboards' figures computed the slow, obvious way: plain SQL over
`ledger_entries` (no rollups, no view), for the tests to compare against.

Earnings are the creator shares of tips, settled tickets and call blocks, less
refunded blocks; spending is what a fan's tips, tickets and call blocks took,
less the refunds of those, whether a refund landed in the wallet or repaid
debt. Payouts, card refunds and chargebacks are neither."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import text

from app import ledger
from app.extensions import db

EARN = {"tip": "tips", "ticket_settlement": "tickets", "call_block": "calls", "call_refund": "calls"}
SPEND = {"tip": "tips", "ticket": "tickets", "ticket_refund": "tickets", "call_block": "calls",
         "call_refund": "calls"}


def start_of(range_: str, today: date) -> datetime:
    days = {"today": 0, "7d": 6, "30d": 29}
    if range_ == "all":
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    return datetime.combine(today - timedelta(days=days[range_]), time.min, tzinfo=timezone.utc)


def entries(account_id: int | list[int], since: datetime) -> list:
    """The entries of one account (or several) since `since`, in id order."""
    ids = account_id if isinstance(account_id, list) else [account_id]
    return db.session.execute(text(
        "SELECT e.id, e.transfer_id, e.amount, e.created_at, t.kind, t.metadata FROM ledger_entries e "
        "JOIN ledger_transfers t ON t.id = e.transfer_id WHERE e.account_id = ANY(:a) AND e.created_at >= :s "
        "ORDER BY e.id"), {"a": ids, "s": since}).all()


def legs(transfer_id: int) -> list:
    return db.session.execute(text(
        "SELECT a.kind, a.user_id, e.amount, e.account_id FROM ledger_entries e "
        "JOIN ledger_accounts a ON a.id = e.account_id WHERE e.transfer_id = :t"), {"t": transfer_id}).all()


def earnings(creator_id: int, range_: str, today: date) -> dict:
    acc = ledger.account_for(creator_id, "earnings")
    by = {"tips": 0, "tickets": 0, "calls": 0}
    per_day = defaultdict(lambda: {"tips": 0, "tickets": 0, "calls": 0})
    fans = defaultdict(int)
    for e in entries(acc.id, start_of(range_, today)):
        if e.kind not in EARN:  # a payout, or its return
            continue
        by[EARN[e.kind]] += e.amount
        per_day[e.created_at.astimezone(timezone.utc).date()][EARN[e.kind]] += e.amount
        # The fan: the one owner of the transfer's wallet and debt legs (a refund may repay debt only).
        holders = {leg.user_id for leg in legs(e.transfer_id) if leg.kind in ("wallet", "debt")}
        if len(holders) == 1:
            fans[holders.pop()] += e.amount
    pending = db.session.scalar(text(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN streams s ON s.escrow_account_id = e.account_id "
        "WHERE s.creator_id = :c AND s.status IN ('scheduled', 'live')"), {"c": creator_id})
    return {"by": by, "total": sum(by.values()), "per_day": dict(per_day), "fans": dict(fans),
            "pending": int(pending)}


def top_fans(creator_id: int, range_: str, today: date, limit: int) -> list[tuple[int, int]]:
    """(fan id, amount) by amount then lower id first, zero totals left out."""
    fans = earnings(creator_id, range_, today)["fans"]
    return sorted(((uid, amount) for uid, amount in fans.items() if amount), key=lambda x: (-x[1], x[0]))[:limit]


_RECENT = "coalesce(ended_at, 'infinity'::timestamptz)"


def stream_revenue(creator_id: int, range_: str, today: date, limit: int) -> list[tuple]:
    """(stream id, tickets, tips) for the creator's shows that ran in the range (live,
    or ended in it), live first then by end time, newest first: the earnings entries
    of the settlement transfer the stream row names, and of the tips whose row names
    the stream, dated in the range."""
    since = start_of(range_, today)
    acc = ledger.account_for(creator_id, "earnings")
    streams = db.session.execute(text(
        f"SELECT id, settlement_transfer_id FROM streams WHERE creator_id = :c AND started_at IS NOT NULL "
        f"AND {_RECENT} >= :s ORDER BY {_RECENT} DESC, id DESC LIMIT :n"),
        {"c": creator_id, "s": since, "n": limit}).all()
    out = []
    for s in streams:
        tickets = db.session.scalar(text(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE transfer_id = :t AND account_id = :a "
            "AND created_at >= :s"), {"t": s.settlement_transfer_id or 0, "a": acc.id, "s": since})
        tips = db.session.scalar(text(
            "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN tips t ON t.transfer_id = e.transfer_id "
            "WHERE t.stream_id = :id AND e.account_id = :a AND e.created_at >= :s"),
            {"id": s.id, "a": acc.id, "s": since})
        out.append((s.id, int(tickets), int(tips)))
    return out


def call_revenue(creator_id: int, range_: str, today: date, limit: int) -> list[tuple]:
    """(call id, blocks, refunded, total) for the creator's calls that ran in the range
    (open, or ended in it) with blocks charged or refunded in the range, open first
    then by end time, newest first: the earnings entries of the transfers its
    `block_charged` and `block_refunded` events name, dated in the range."""
    since = start_of(range_, today)
    acc = ledger.account_for(creator_id, "earnings")
    calls = db.session.execute(text(
        f"SELECT id FROM calls WHERE creator_id = :c AND accepted_at IS NOT NULL AND {_RECENT} >= :s "
        f"ORDER BY {_RECENT} DESC, id DESC"), {"c": creator_id, "s": since}).scalars().all()
    out = []
    for call_id in calls:
        blocks, refunded, total = db.session.execute(text(
            "SELECT count(*) FILTER (WHERE b.type = 'block_charged'), "
            "count(*) FILTER (WHERE b.type = 'block_refunded'), coalesce(sum(e.amount), 0) FROM billing_events b "
            "JOIN ledger_entries e ON e.transfer_id = b.transfer_id AND e.account_id = :a "
            "WHERE b.call_id = :id AND b.type IN ('block_charged', 'block_refunded') AND e.created_at >= :s"),
            {"id": call_id, "a": acc.id, "s": since}).one()
        if blocks or refunded:
            out.append((call_id, int(blocks), int(refunded), int(total)))
    return out[:limit]


def spending(user_id: int, range_: str, today: date) -> dict:
    """By type, by creator, and the payments (one per transfer, oldest first: (transfer
    id, kind, tokens spent, created_at, metadata)) of the fan's wallet and debt."""
    accounts = [a.id for a in (ledger.account_for(user_id, kind) for kind in ("wallet", "debt")) if a]
    by = {"tips": 0, "tickets": 0, "calls": 0}
    creators = defaultdict(int)
    payments: dict[int, list] = {}
    for e in entries(accounts, start_of(range_, today)):
        if e.kind not in SPEND:  # a purchase, a card refund or chargeback, or its reversal
            continue
        by[SPEND[e.kind]] -= e.amount
        owners = {leg.user_id for leg in legs(e.transfer_id) if leg.kind in ("earnings", "escrow")}
        assert len(owners) == 1
        creators[owners.pop()] -= e.amount
        if e.transfer_id in payments:
            payments[e.transfer_id][2] -= e.amount
        else:
            payments[e.transfer_id] = [e.transfer_id, e.kind, -e.amount, e.created_at, e.metadata]
    return {"by": by, "total": sum(by.values()), "creators": {k: v for k, v in creators.items() if v},
            "lines": [tuple(p) for p in payments.values()]}


def platform(range_: str, today: date) -> dict:
    since = start_of(range_, today)
    fees = ledger.system_account("platform_fees").id
    by = {"tips": 0, "tickets": 0, "calls": 0}
    per_day = defaultdict(lambda: {"tips": 0, "tickets": 0, "calls": 0})
    for e in entries(fees, since):
        by[EARN[e.kind]] += e.amount
        per_day[e.created_at.astimezone(timezone.utc).date()][EARN[e.kind]] += e.amount
    sales = entries(ledger.system_account("token_sales").id, since)
    sold = -sum(e.amount for e in sales if e.kind == "purchase")
    taken_back = sum(e.amount for e in sales if e.kind in ("purchase_reversal", "purchase_restore"))
    held = dict(db.session.execute(text(
        "SELECT a.kind, coalesce(sum(e.amount), 0) FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id "
        "WHERE a.kind IN ('wallet', 'escrow', 'debt') GROUP BY a.kind")).all())
    return {"by": by, "per_day": dict(per_day), "sold": sold, "taken_back": taken_back,
            "outstanding": int(held.get("wallet", 0)), "escrow": int(held.get("escrow", 0)),
            "owed": -int(held.get("debt", 0))}
