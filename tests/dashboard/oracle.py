"""The dashboards' figures computed the slow, obvious way: plain SQL over
`ledger_entries` (no rollups, no view), for the tests to compare against."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import text

from app import ledger
from app.extensions import db

EARN = {"tip": "tips", "ticket_settlement": "tickets", "call_block": "calls"}
SPEND = {"tip": "tips", "ticket": "tickets", "ticket_refund": "tickets", "call_block": "calls"}


def start_of(range_: str, today: date) -> datetime:
    days = {"today": 0, "7d": 6, "30d": 29}
    if range_ == "all":
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    return datetime.combine(today - timedelta(days=days[range_]), time.min, tzinfo=timezone.utc)


def entries(account_id: int, since: datetime) -> list:
    return db.session.execute(text(
        "SELECT e.id, e.transfer_id, e.amount, e.created_at, t.kind FROM ledger_entries e "
        "JOIN ledger_transfers t ON t.id = e.transfer_id WHERE e.account_id = :a AND e.created_at >= :s "
        "ORDER BY e.id"), {"a": account_id, "s": since}).all()


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
        by[EARN[e.kind]] += e.amount
        per_day[e.created_at.astimezone(timezone.utc).date()][EARN[e.kind]] += e.amount
        wallets = [leg for leg in legs(e.transfer_id) if leg.kind == "wallet"]
        if len(wallets) == 1:
            fans[wallets[0].user_id] += e.amount
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
    """(call id, blocks, total) for the creator's calls with blocks charged in the
    range, open first then by end time, newest first: the earnings entries of the
    transfers its `block_charged` events name, dated in the range."""
    since = start_of(range_, today)
    acc = ledger.account_for(creator_id, "earnings")
    calls = db.session.execute(text(
        f"SELECT id FROM calls WHERE creator_id = :c AND accepted_at IS NOT NULL AND {_RECENT} >= :s "
        f"ORDER BY {_RECENT} DESC, id DESC"), {"c": creator_id, "s": since}).scalars().all()
    out = []
    for call_id in calls:
        blocks, total = db.session.execute(text(
            "SELECT count(*), coalesce(sum(e.amount), 0) FROM billing_events b "
            "JOIN ledger_entries e ON e.transfer_id = b.transfer_id AND e.account_id = :a "
            "WHERE b.call_id = :id AND b.type = 'block_charged' AND e.created_at >= :s"),
            {"id": call_id, "a": acc.id, "s": since}).one()
        if blocks:
            out.append((call_id, int(blocks), int(total)))
    return out[:limit]


def spending(user_id: int, range_: str, today: date) -> dict:
    acc = ledger.account_for(user_id, "wallet")
    by = {"tips": 0, "tickets": 0, "calls": 0}
    creators = defaultdict(int)
    lines = []
    for e in entries(acc.id, start_of(range_, today)):
        if e.kind not in SPEND:
            continue
        by[SPEND[e.kind]] -= e.amount
        owners = {leg.user_id for leg in legs(e.transfer_id) if leg.kind in ("earnings", "escrow")}
        assert len(owners) == 1
        creators[owners.pop()] -= e.amount
        lines.append(e)
    return {"by": by, "total": sum(by.values()), "creators": {k: v for k, v in creators.items() if v},
            "lines": lines}


def platform(range_: str, today: date) -> dict:
    since = start_of(range_, today)
    fees = ledger.system_account("platform_fees").id
    by = {"tips": 0, "tickets": 0, "calls": 0}
    per_day = defaultdict(lambda: {"tips": 0, "tickets": 0, "calls": 0})
    for e in entries(fees, since):
        by[EARN[e.kind]] += e.amount
        per_day[e.created_at.astimezone(timezone.utc).date()][EARN[e.kind]] += e.amount
    sold = -sum(e.amount for e in entries(ledger.system_account("token_sales").id, since))
    outstanding = db.session.scalar(text("SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE kind = 'wallet'"))
    escrow = db.session.scalar(text(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE a.kind = 'escrow'"))
    return {"by": by, "per_day": dict(per_day), "sold": sold, "outstanding": int(outstanding),
            "escrow": int(escrow)}
