"""Which transfer kinds make each source a dashboard shows: tips, tickets, calls.

Every figure that names a source reads it from here; the SQL that picks out
one kind (a show's settlement, a call's blocks) is in `queries.py`.

Only these kinds are earnings or spending. Money that merely passes through
an account is neither: a payout (`payout`, `payout_paid`, `payout_return`)
takes earned tokens out of — or back into — the earnings account, and a card
refund or chargeback (`purchase_reversal`, `purchase_restore`) takes bought
tokens back from a fan; the figures leave them out by naming only the kinds
below.
"""
from __future__ import annotations

from app.ledger import TransferKind as K

SOURCES = ("tips", "tickets", "calls")
# Which transfer kinds make each source: on a creator's earnings account (a call
# block's refund takes its share back) ...
EARNING_KINDS = {K.TIP: "tips", K.TICKET_SETTLEMENT: "tickets", K.CALL_BLOCK: "calls", K.CALL_REFUND: "calls"}
# ... and on a fan's own accounts (a refund counts against what it refunds).
SPENDING_KINDS = {K.TIP: "tips", K.TICKET: "tickets", K.TICKET_REFUND: "tickets", K.CALL_BLOCK: "calls",
                  K.CALL_REFUND: "calls"}
FEE_KINDS = EARNING_KINDS
# A fan's own accounts: spending leaves the wallet; a refund credits the debt
# account first when they owe (`ledger.holder_credit`), the wallet with the rest.
SPENDING_ACCOUNTS = ("wallet", "debt")
# A fan's spending line (on the page and in the CSV): its type per transfer kind.
LINE_TYPES = {K.TIP: "tips", K.TICKET: "tickets", K.TICKET_REFUND: "refund", K.CALL_BLOCK: "calls",
              K.CALL_REFUND: "refund"}


def by_source(sums: dict[str, int], kinds: dict[str, str], sign: int = 1) -> dict[str, int]:
    """Sums per transfer kind (`queries.by_kind`) as sums per source, keys exactly
    SOURCES; only the kinds `kinds` names count. `sign=-1` for a fan's accounts,
    where spending is a debit."""
    totals = {source: 0 for source in SOURCES}
    for kind, source in kinds.items():
        totals[source] += sign * sums.get(kind, 0)
    return totals
