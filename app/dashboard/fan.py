"""A user's own spending: totals by type and by creator, month by month, and
line by line with a receipt link each. Any logged-in user, own wallet only."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from app.dashboard import queries
from app.dashboard.ranges import parse_range, start_day, today
from app.dashboard.sources import LINE_TYPES, SOURCES, SPENDING_KINDS
from app.ledger import TransferKind
from app.wallet.service import describe


@dataclass
class CreatorTotal:
    creator_id: int
    display_name: str
    total: int


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
    amount: int                 # tokens out of the wallet (a refund is negative)
    reference: str
    receipt_url: str


def _spending_from(kinds: dict[str, int]) -> dict[str, int]:
    by_type = {source: 0 for source in SOURCES}
    for kind, source in SPENDING_KINDS.items():
        by_type[source] -= kinds.get(kind, 0)  # wallet debits are negative entries
    return by_type


def fan_spending(user, range_: str) -> Spending:
    """Tokens out of `user`'s own wallet in the range (tips, tickets net of
    refunds, call blocks; purchases are not spending), by type and by creator
    (biggest first). Raises InvalidValue for a bad range."""
    range_ = parse_range(range_)
    start = start_day(range_)
    wallet = queries.account_id(user.id, "wallet")
    by_type = _spending_from(queries.by_kind(wallet, start))
    per_creator = {cid: -amount for cid, amount in queries.by_counterparty(wallet, start, range_ == "all").items()
                   if amount}
    names = queries.names(per_creator)
    by_creator = [CreatorTotal(cid, names.get(cid, "?"), total)
                  for cid, total in sorted(per_creator.items(), key=lambda x: (-x[1], x[0]))]
    return Spending(range_, sum(by_type.values()), by_type, by_creator)


def spending_by_month(user, months: int = 12) -> list[MonthSpending]:
    """The last `months` calendar months (UTC) with any spending, newest first,
    each by type and by creator."""
    months = max(1, min(int(months), 120))
    today_ = today()
    first = date(today_.year, today_.month, 1)
    for _ in range(months - 1):
        first = date(first.year - (first.month == 1), 12 if first.month == 1 else first.month - 1, 1)
    wallet = queries.account_id(user.id, "wallet")
    if wallet is None:
        return []
    kind_rows, pair_rows = queries.by_month(wallet, first)
    by_month: dict[date, dict[str, int]] = {}
    for r in kind_rows:
        by_month.setdefault(r.month, {})[r.kind] = int(r.amount)
    names = queries.names(r.counterparty_id for r in pair_rows)
    out = []
    for month in sorted(by_month, reverse=True):
        by_type = _spending_from(by_month[month])
        if not any(by_type.values()):
            continue
        creators = sorted(((r.counterparty_id, -int(r.amount)) for r in pair_rows if r.month == month and r.amount),
                          key=lambda x: (-x[1], x[0]))
        out.append(MonthSpending(month, by_type["tips"], by_type["tickets"], by_type["calls"],
                                 [CreatorTotal(cid, names.get(cid, "?"), t) for cid, t in creators]))
    return out


def reference(kind: str, metadata: dict, amount: int) -> str:
    """What a spending line says it paid for (the wallet's wording; a call block names its block)."""
    if kind == TransferKind.CALL_BLOCK and "callId" in metadata:
        return f"Call #{metadata['callId']}, block {int(metadata.get('blockIndex', 0)) + 1}"
    return describe(kind, metadata, abs(amount))


def spending_lines(user, range_: str, limit: int = 50) -> list[SpendingLine]:
    """The user's latest spending entries in the range (tips, tickets, ticket
    refunds, call blocks), newest first; `amount` is tokens out of the wallet
    (a refund is negative); `receipt_url` is the wallet receipt of the transfer."""
    range_ = parse_range(range_)
    wallet = queries.account_id(user.id, "wallet")
    if wallet is None:
        return []
    limit = max(1, min(int(limit), 500))
    rows = queries.latest_entries(wallet, start_day(range_), list(LINE_TYPES), limit)
    names = queries.names(r.counterparty_id for r in rows)
    return [SpendingLine(r.created_at, LINE_TYPES[r.transfer_kind], names.get(r.counterparty_id, ""), -int(r.amount),
                         reference(r.transfer_kind, r.metadata or {}, int(r.amount)),
                         f"/wallet/receipts/{r.transfer_id}") for r in rows]
