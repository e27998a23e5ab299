"""The operators' view: platform fees, token supply, escrow and the last books check."""
from __future__ import annotations

from dataclasses import dataclass

from app import ledger
from app.dashboard import queries
from app.dashboard.ranges import DayTotals, days, parse_range, start_day
from app.dashboard.sources import FEE_KINDS, SOURCES
from app.errors import Forbidden
from app.ledger.verify import VerifyRun, last_run


@dataclass
class Platform:
    range: str
    fees_by_source: dict[str, int]
    fees_by_day: list[DayTotals]
    tokens_sold: int
    tokens_outstanding: int
    escrow_held: int
    last_verify: VerifyRun | None


def platform_overview(user, range_: str) -> Platform:
    """Platform fees by source and by UTC day in the range, tokens sold in the
    range, tokens outstanding in wallets and held in escrow now, and the last
    `flask ledger verify` result. Raises Forbidden ("not_an_operator") unless
    `user.is_operator`, InvalidValue for a bad range."""
    if not getattr(user, "is_operator", False):
        raise Forbidden("The platform view is for operators.", "not_an_operator")
    range_ = parse_range(range_)
    start = start_day(range_)
    fees_id = ledger.system_account("platform_fees").id
    kinds = queries.by_kind(fees_id, start)
    fees_by_source = {source: 0 for source in SOURCES}
    for kind, source in FEE_KINDS.items():
        fees_by_source[source] += kinds.get(kind, 0)
    day_start = queries.series_start(fees_id, range_)
    fees_by_day = days(day_start, queries.by_day_source(fees_id, day_start, FEE_KINDS) if day_start else {})
    sold = -queries.by_kind(ledger.system_account("token_sales").id, start).get(ledger.TransferKind.PURCHASE, 0)
    held = queries.held_now()
    return Platform(range_, fees_by_source, fees_by_day, sold, held.get("wallet", 0), held.get("escrow", 0),
                    last_run())
