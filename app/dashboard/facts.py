"""What the dashboards know of each ledger entry: `FACTS`, the one SQL every
figure reads entries through (the rollup job's sums and the dashboards' tails).

It is the view ``dashboard_entry_facts`` (migration 0010: the entry with its
account kind, transfer kind, UTC day, counterparty, stream or call) with the
money movements of real money (DESIGN.md §11) attributed too. The view
predates them: it looks for the fan only in wallets, and knows no call refund.

* A fan's **debt** account is theirs like their wallet: a credit repays what
  they owe first, so a call block's refund (and a canceled show's) may land
  there. Its entries get the view's wallet rule: the counterparty is the owner
  of the transfer's earnings or escrow leg (the creator).
* A **call refund** (`call_refund`) is the call's money like the block it
  reverses: on the creator's earnings its counterparty is the fan — the owner
  of the transfer's wallet and debt legs (a refund that only repaid debt has no
  wallet leg, so the view would find nobody) — and it belongs to its call
  (``metadata.callId``, ref 'call'), as blocks do.
* Nothing else new gets a counterparty or a ref: payouts, purchase reversals
  and restores are nobody's earnings or spending (the view finds no wallet leg
  on a payout, no earnings or escrow leg on a reversal).

Written as a subquery over the view so that filters on the entry's own columns
(`account_id`, `id`, `created_at`) reach the view's index scans; the extra
lookups run only for the entries they concern (each is a CASE branch).
"""
from __future__ import annotations

from app.ledger import TransferKind

_OWNER_OF = """(SELECT min(a2.user_id) FROM ledger_entries e2 JOIN ledger_accounts a2 ON a2.id = e2.account_id
                 WHERE e2.transfer_id = v.transfer_id AND a2.kind IN ({kinds}))"""

FACTS = """(
    SELECT v.id, v.transfer_id, v.account_id, v.account_kind, v.owner_id, v.transfer_kind, v.amount,
           v.created_at, v.day,
           CASE WHEN v.account_kind = 'debt' THEN {creator}
                WHEN v.account_kind = 'earnings' AND v.transfer_kind = '{refund}' THEN {fan}
                ELSE v.counterparty_id END AS counterparty_id,
           CASE WHEN v.transfer_kind = '{refund}' THEN 'call' ELSE v.ref_type END AS ref_type,
           CASE WHEN v.transfer_kind = '{refund}'
                THEN (SELECT (t.metadata->>'callId')::bigint FROM ledger_transfers t WHERE t.id = v.transfer_id)
                ELSE v.ref_id END AS ref_id
      FROM dashboard_entry_facts v)""".format(
    creator=_OWNER_OF.format(kinds="'earnings', 'escrow'"), fan=_OWNER_OF.format(kinds="'wallet', 'debt'"),
    refund=TransferKind.CALL_REFUND)
