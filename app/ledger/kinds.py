"""Transfer kinds: the one list of what a ledger transfer can be (`ledger_transfers.kind`).

The database accepts exactly these (CHECK `ck_ledger_transfers_kind`, migration
0013). A new kind is a member here plus a migration that widens the CHECK;
tests/ledger/test_kinds.py fails until the two agree.
"""
from enum import StrEnum


class TransferKind(StrEnum):
    """What a transfer is for; each member says what it moves and its idempotency key."""

    PURCHASE = "purchase"                    # token_sales → the buyer's wallet; purchase:<purchase id>
    TIP = "tip"                              # a fan's wallet pays a creator (creator_payment); tip:<tip id>
    TICKET = "ticket"                        # a fan's wallet → the show's escrow; ticket:<stream id>:<fan id>
    TICKET_REFUND = "ticket_refund"          # the show's escrow → its fans' wallets; stream:<id>:refund:<ticket id>
    TICKET_SETTLEMENT = "ticket_settlement"  # the show's escrow pays its creator (creator_payment); stream:<id>:settle
    CALL_BLOCK = "call_block"                # a fan's wallet pays a creator (creator_payment); call:<id>:block:<k>
