"""The operators' view: platform fees, token supply, escrow, debt and the last books check."""
from __future__ import annotations

from dataclasses import dataclass

from app import ledger
from app.auth.service import require_operator
from app.dashboard import queries
from app.dashboard.ranges import DayTotals, days, parse_range, start_day
from app.dashboard.sources import FEE_KINDS, by_source
from app.ledger import TransferKind
from app.ledger.verify import VerifyRun, last_run


@dataclass
class Platform:
    range: str
    fees_by_source: dict[str, int]
    fees_by_day: list[DayTotals]
    tokens_sold: int            # credited by purchases in the range
    tokens_taken_back: int      # by card refunds and chargebacks in the range, less chargebacks won
    tokens_outstanding: int     # in all wallets now
    debt_outstanding: int       # owed by fans now: what taking back could not find in their wallets
    escrow_held: int            # in the escrow of shows now
    last_verify: VerifyRun | None


def platform_overview(user, range_: str) -> Platform:
    """Platform fees by source and by UTC day in the range (less the fees of call
    blocks refunded in it), tokens sold in the range (purchases credited, gross)
    and taken back in it (card refunds and chargebacks, less chargebacks won),
    tokens outstanding in wallets, held in escrow and owed by fans now, and the
    last `flask ledger verify` result. Raises Forbidden ("not_an_operator") unless
    `user.is_operator`, InvalidValue for a bad range."""
    require_operator(user, "The platform view")
    range_ = parse_range(range_)
    start = start_day(range_)
    fees_id = ledger.system_account("platform_fees").id
    fees_by_source = by_source(queries.by_kind([fees_id], start), FEE_KINDS)
    day_start = queries.series_start(fees_id, range_)
    fees_by_day = days(day_start, queries.by_day_source(fees_id, day_start, FEE_KINDS) if day_start else {})
    # token_sales pays out what is sold and gets back what is taken back.
    sales = queries.by_kind([ledger.system_account("token_sales").id], start)
    sold = -sales.get(TransferKind.PURCHASE, 0)
    taken_back = sales.get(TransferKind.PURCHASE_REVERSAL, 0) + sales.get(TransferKind.PURCHASE_RESTORE, 0)
    held = queries.held_now()
    return Platform(range_, fees_by_source, fees_by_day, tokens_sold=sold, tokens_taken_back=taken_back,
                    tokens_outstanding=held.get("wallet", 0), debt_outstanding=-held.get("debt", 0),
                    escrow_held=held.get("escrow", 0), last_verify=last_run())
