"""`verify()`: re-check every ledger invariant from the raw tables.

Used by `flask ledger verify`, the Hypothesis state machine and tests. It
reads with plain SQL so it also catches damage done by code that bypassed
`app.ledger`. The command keeps each result (`record_run`); the platform view
shows the last one (`last_run`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from app.extensions import db


@dataclass(frozen=True)
class Violation:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


_CHECKS = [
    (
        "transfer_unbalanced",
        """SELECT t.id, coalesce(sum(e.amount), 0), count(e.id)
             FROM ledger_transfers t LEFT JOIN ledger_entries e ON e.transfer_id = t.id
            GROUP BY t.id HAVING coalesce(sum(e.amount), 0) <> 0 OR count(e.id) < 2""",
        "transfer {0}: entries sum to {1} over {2} entries",
    ),
    (
        "cached_balance_mismatch",
        """SELECT a.id, a.balance, coalesce(s.total, 0)
             FROM ledger_accounts a
             LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) s
                    ON s.account_id = a.id
            WHERE a.cached AND a.balance <> coalesce(s.total, 0)""",
        "account {0}: cached balance {1} but entries sum to {2}",
    ),
    (
        "running_balance_mismatch",
        """SELECT a.id, a.balance, last.balance_after
             FROM ledger_accounts a
             JOIN LATERAL (SELECT balance_after FROM ledger_entries
                            WHERE account_id = a.id ORDER BY id DESC LIMIT 1) last ON true
            WHERE a.cached AND last.balance_after IS DISTINCT FROM a.balance""",
        "account {0}: balance {1} but last entry's balance_after is {2}",
    ),
    (
        "negative_balance",
        """SELECT a.id, a.kind, CASE WHEN a.cached THEN a.balance ELSE coalesce(s.total, 0) END
             FROM ledger_accounts a
             LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) s
                    ON s.account_id = a.id
            WHERE a.kind NOT IN ('token_sales', 'debt')
              AND CASE WHEN a.cached THEN a.balance ELSE coalesce(s.total, 0) END < 0""",
        "account {0} ({1}) is negative: {2}",
    ),
    (
        # A show's escrow holds exactly its valid tickets until it settles (then nothing).
        "escrow_mismatch",
        """SELECT s.id, coalesce(e.total, 0), CASE WHEN s.settlement_transfer_id IS NULL
                                                  THEN coalesce(t.total, 0) ELSE 0 END
             FROM streams s
             LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) e
                    ON e.account_id = s.escrow_account_id
             LEFT JOIN (SELECT stream_id, sum(price) AS total FROM tickets WHERE status = 'valid'
                         GROUP BY stream_id) t ON t.stream_id = s.id
            WHERE s.escrow_account_id IS NOT NULL
              AND coalesce(e.total, 0) <> CASE WHEN s.settlement_transfer_id IS NULL
                                               THEN coalesce(t.total, 0) ELSE 0 END""",
        "stream {0}: escrow holds {1} but its unsettled valid tickets total {2}",
    ),
    (
        # Tokens in circulation are what purchases credited minus what refunds and
        # disputes took back (DESIGN.md §11).
        "issued_not_purchased",
        """SELECT issued, purchased FROM (
             SELECT (SELECT -coalesce(sum(e.amount), 0) FROM ledger_entries e
                       JOIN ledger_accounts a ON a.id = e.account_id WHERE a.kind = 'token_sales') AS issued,
                    (SELECT coalesce(sum(amount_tokens - refunded_tokens - disputed_tokens), 0) FROM purchases
                      WHERE status IN ('completed', 'refunded', 'disputed')) AS purchased
           ) x WHERE issued <> purchased""",
        "tokens issued {0} but credited purchases, less what was taken back, total {1}",
    ),
    (
        # Every credited purchase has exactly one `purchase` transfer, keyed by its id,
        # that issued exactly its tokens; no other purchase has one.
        "purchase_credit_mismatch",
        """SELECT p.id, p.status, count(t.id), coalesce(sum(-e.amount), 0)
             FROM purchases p
             LEFT JOIN ledger_transfers t ON t.idempotency_key = 'purchase:' || p.id AND t.kind = 'purchase'
             LEFT JOIN ledger_entries e ON e.transfer_id = t.id
                   AND e.account_id = (SELECT id FROM ledger_accounts WHERE kind = 'token_sales')
            GROUP BY p.id, p.status, p.amount_tokens, p.transfer_id
           HAVING CASE WHEN p.status IN ('completed', 'refunded', 'disputed')
                       THEN count(t.id) <> 1 OR coalesce(sum(-e.amount), 0) <> p.amount_tokens
                            OR max(t.id) IS DISTINCT FROM p.transfer_id
                       ELSE count(t.id) <> 0 END""",
        "purchase {0} ({1}) has {2} credit transfer(s) issuing {3} tokens",
    ),
    (
        # A debt is what reversals could not take back, less what credits repaid:
        # only reversals make it, only credits repay it (and never past zero: CHECK).
        "debt_mismatch",
        """SELECT a.user_id, t.kind, e.amount FROM ledger_entries e
             JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'debt'
             JOIN ledger_transfers t ON t.id = e.transfer_id
            WHERE NOT ((e.amount < 0 AND t.kind = 'purchase_reversal')
                    OR (e.amount > 0 AND t.kind IN ('purchase', 'purchase_restore', 'ticket_refund', 'call_refund')))""",
        "user {0}: a {1} transfer moved {2} on their debt",
    ),
    (
        # Credits repay debt first, and take-backs empty the wallet first: nobody
        # owes tokens while holding some.
        "debt_while_holding",
        """SELECT d.user_id, -d.balance, w.balance FROM ledger_accounts d
             JOIN ledger_accounts w ON w.user_id = d.user_id AND w.kind = 'wallet'
            WHERE d.kind = 'debt' AND d.balance < 0 AND w.balance > 0""",
        "user {0} owes {1} tokens while their wallet holds {2}",
    ),
    (
        # Tokens in transit are exactly the payouts not yet paid, failed or rejected.
        "payouts_in_transit_mismatch",
        """SELECT transit, pending FROM (
             SELECT (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e
                       JOIN ledger_accounts a ON a.id = e.account_id WHERE a.kind = 'payouts_in_transit') AS transit,
                    (SELECT coalesce(sum(amount_tokens), 0) FROM payouts
                      WHERE status IN ('requested', 'approved')) AS pending
           ) x WHERE transit <> pending""",
        "payouts in transit hold {0} tokens but unpaid payouts total {1}",
    ),
]


def verify() -> list[Violation]:
    """Return every invariant violation found (an empty list means the books balance)."""
    found: list[Violation] = []
    for rule, sql, template in _CHECKS:
        for row in db.session.execute(text(sql)):
            found.append(Violation(rule, template.format(*row)))
    return found


@dataclass
class VerifyRun:
    ran_at: datetime
    ok: bool
    violations: int
    summary: str


def record_run(violations: list) -> VerifyRun:
    """Store one `flask ledger verify` result (commits)."""
    summary = "ok" if not violations else "; ".join(str(v) for v in violations[:5])[:1000]
    row = db.session.execute(text(
        "INSERT INTO ledger_verify_runs (ok, violations, summary) VALUES (:ok, :n, :s) "
        "RETURNING ran_at, ok, violations, summary"), {"ok": not violations, "n": len(violations), "s": summary}).one()
    db.session.commit()
    return VerifyRun(row.ran_at, row.ok, row.violations, row.summary)


def last_run() -> VerifyRun | None:
    """The most recent stored `flask ledger verify` result, None before the first."""
    row = db.session.execute(text(
        "SELECT ran_at, ok, violations, summary FROM ledger_verify_runs ORDER BY id DESC LIMIT 1")).one_or_none()
    return VerifyRun(row.ran_at, row.ok, row.violations, row.summary) if row else None
