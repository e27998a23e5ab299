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
    # Real money (DESIGN.md §11). "Credit a user" is `holder_credit`'s legs (their
    # debt repaid first, then the wallet); "take back" is `holder_take_back`'s
    # (the wallet first, the rest becomes debt).
    PURCHASE_REVERSAL = "purchase_reversal"  # a refund or dispute takes a purchase's tokens back to token_sales;
    #                                          purchase:<id>:refund:<cumulative tokens> / purchase:<id>:dispute:<dispute id>
    PURCHASE_RESTORE = "purchase_restore"    # a won dispute gives them back; purchase:<id>:dispute:<dispute id>:won
    CALL_REFUND = "call_refund"              # a call block's payment reversed (earnings and fees → the fan);
    #                                          call:<id>:refund:block:<k>
    PAYOUT = "payout"                        # a creator's earnings → payouts_in_transit; payout:<id>
    PAYOUT_PAID = "payout_paid"              # payouts_in_transit → payouts_paid (money sent); payout:<id>:paid
    PAYOUT_RETURN = "payout_return"          # payouts_in_transit → earnings (failed / rejected); payout:<id>:return
