"""A user's own spending: totals by type and by creator, month by month, and
line by line with a receipt link each. Any logged-in user, own wallet only."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice

from app.dashboard import queries
from app.dashboard.ranges import parse_range, start_day, today
from app.dashboard.sources import LINE_TYPES, SPENDING_ACCOUNTS, SPENDING_KINDS, by_source
from app.ledger import TransferKind
from app.wallet.service import describe


@dataclass
class CreatorTotal:
    creator_id: int
    display_name: str
    total: int
    handle: str | None = None   # their page is /c/<handle>


@dataclass
class Spending:
    range: str
    total: int
    by_type: dict[str, int]     # keys exactly "tips", "tickets", "calls"
    by_creator: list[CreatorTotal]

    def to_dict(self) -> dict:
        return {"range": self.range, "total": self.total, "byType": dict(self.by_type),
                "byCreator": [{"creatorId": c.creator_id, "displayName": c.display_name, "total": c.total}
                              for c in self.by_creator]}


@dataclass
class MonthSpending:
    month: date                 # the first day of the month
    tips: int = 0
    tickets: int = 0
    calls: int = 0
    by_creator: list[CreatorTotal] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.tips + self.tickets + self.calls


@dataclass
class SpendingLine:
    at: datetime
    type: str                   # "tips" | "tickets" | "calls" | "refund"
    creator_name: str
    amount: int                 # tokens spent (a refund is negative)
    reference: str
    receipt_url: str
    creator_handle: str | None = None


def _accounts(user) -> list[int]:
    """The user's own accounts spending and its refunds move: wallet, and debt."""
    return queries.account_ids(user.id, SPENDING_ACCOUNTS)


def _spending_from(sums: dict[str, int]) -> dict[str, int]:
    return by_source(sums, SPENDING_KINDS, sign=-1)  # spending debits the wallet; a refund credits wallet or debt


def fan_spending(user, range_: str) -> Spending:
    """Tokens `user` spent in the range, net of refunds (tips, tickets less show
    refunds, call blocks less block refunds — a refund counts in full, also the
    part that repaid what the user owed), by type and by creator (biggest
    first). Purchases, and the card refunds and chargebacks that take bought
    tokens back, are not spending. Raises InvalidValue for a bad range."""
    range_ = parse_range(range_)
    start = start_day(range_)
    accounts = _accounts(user)
    by_type = _spending_from(queries.by_kind(accounts, start))
    per_creator = {cid: -amount for cid, amount in queries.by_counterparty(accounts, start, range_ == "all").items()
                   if amount}
    names, handles = queries.names(per_creator), queries.handles(per_creator)
    by_creator = [CreatorTotal(cid, names.get(cid, "?"), total, handles.get(cid))
                  for cid, total in sorted(per_creator.items(), key=lambda x: (-x[1], x[0]))]
    return Spending(range_, sum(by_type.values()), by_type, by_creator)


def spending_by_month(user, months: int = 12) -> list[MonthSpending]:
    """The last `months` calendar months (UTC) with any spending, newest first,
    each by type and by creator (counted as `fan_spending`)."""
    months = max(1, min(int(months), 120))
    today_ = today()
    first = date(today_.year, today_.month, 1)
    for _ in range(months - 1):
        first = date(first.year - (first.month == 1), 12 if first.month == 1 else first.month - 1, 1)
    accounts = _accounts(user)
    if not accounts:
        return []
    kind_rows, pair_rows = queries.by_month(accounts, first)
    by_month: dict[date, dict[str, int]] = {}
    for r in kind_rows:
        by_month.setdefault(r.month, {})[r.kind] = int(r.amount)
    names = queries.names(r.counterparty_id for r in pair_rows)
    handles = queries.handles(r.counterparty_id for r in pair_rows)
    out = []
    for month in sorted(by_month, reverse=True):
        by_type = _spending_from(by_month[month])
        if not any(by_type.values()):
            continue
        creators = sorted(((r.counterparty_id, -int(r.amount)) for r in pair_rows if r.month == month and r.amount),
                          key=lambda x: (-x[1], x[0]))
        out.append(MonthSpending(month, by_type["tips"], by_type["tickets"], by_type["calls"],
                                 [CreatorTotal(cid, names.get(cid, "?"), t, handles.get(cid)) for cid, t in creators]))
    return out


def _block(metadata: dict) -> str:
    return f"Call #{metadata['callId']}, block {int(metadata.get('blockIndex', 0)) + 1}"


def reference(kind: str, metadata: dict, amount: int) -> str:
    """What a spending line says it paid for (the wallet's wording; a call block, or
    its refund, names its block)."""
    if kind == TransferKind.CALL_BLOCK and "callId" in metadata:
        return _block(metadata)
    if kind == TransferKind.CALL_REFUND and "callId" in metadata:
        return f"Refund: {_block(metadata).lower()}"
    return describe(kind, metadata, abs(amount))


def receipt_url(kind: str, transfer_id: int, metadata: dict) -> str:
    """Where a spending line's receipt is: the wallet's receipt of its transfer, or
    for a call block's refund the call's receipts (a refund that only repaid what
    the fan owed has no wallet entry to show)."""
    if kind == TransferKind.CALL_REFUND and "callId" in metadata:
        return f"/calls/{int(metadata['callId'])}"
    return f"/wallet/receipts/{transfer_id}"


def spending_lines(user, range_: str, limit: int = 50) -> list[SpendingLine]:
    """The user's latest payments in the range (tips, tickets, ticket refunds, call
    blocks, block refunds), newest first, one per transfer; `amount` is tokens
    spent (a refund is negative, all of it: the part that repaid debt too)."""
    range_ = parse_range(range_)
    accounts = _accounts(user)
    limit = max(1, min(int(limit), 500))
    rows = queries.latest_entries(accounts, start_day(range_), list(LINE_TYPES), limit)
    payments = list(islice(queries.by_transfer(rows), limit))
    names = queries.names(r.counterparty_id for r, _ in payments)
    handles = queries.handles(r.counterparty_id for r, _ in payments)
    return [SpendingLine(r.created_at, LINE_TYPES[r.transfer_kind], names.get(r.counterparty_id, ""), -amount,
                         reference(r.transfer_kind, r.metadata or {}, amount),
                         receipt_url(r.transfer_kind, r.transfer_id, r.metadata or {}),
                         handles.get(r.counterparty_id)) for r, amount in payments]
