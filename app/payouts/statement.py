"""A creator's monthly statement (`GET /api/payouts/statement?month=YYYY-MM`, CSV).

One line per movement of the earnings account in the UTC month, from the
opening balance to the closing one, so the lines always add up: opening +
every line in between = closing. Earnings by source (`app.dashboard.sources`
names which transfer kinds make each), payouts taken out (and given back when
one failed or was rejected), refunds clawed back (call blocks refunded), and
"other" for any kind none of those name, so nothing is ever left out.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import text

from app import ledger
from app.auth.service import require_creator
from app.dashboard.sources import EARNING_KINDS, SOURCES
from app.errors import InvalidValue
from app.extensions import db
from app.payments.providers import payout_cents
from app.payouts.service import CREATORS_ONLY

HEADER = ["line", "tokens", "amount", "currency"]
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
K = ledger.TransferKind
# The lines after the earnings, each the sum of these kinds' entries.
OTHER_LINES = (("payouts", (K.PAYOUT,)), ("payouts returned", (K.PAYOUT_RETURN,)),
               ("refunds clawed back", (K.CALL_REFUND,)))


@dataclass(frozen=True)
class Month:
    start: datetime
    end: datetime
    label: str


def parse_month(raw) -> Month:
    """`YYYY-MM` (a UTC month of the years 1970–9998) or `InvalidValue` on `month`."""
    match = _MONTH.fullmatch(raw) if isinstance(raw, str) else None
    year, month = (int(match[1]), int(match[2])) if match else (0, 0)
    if not (1970 <= year <= 9998 and 1 <= month <= 12):
        raise InvalidValue("Choose a month as YYYY-MM, like 2026-01.", field="month")
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return Month(start, end, f"{year:04d}-{month:02d}")


# One statement, one snapshot: the opening balance and the month's sums per kind.
_SUMS = text("""
    SELECT NULL AS kind, coalesce(sum(amount), 0) AS tokens FROM ledger_entries
     WHERE account_id = :a AND created_at < :start
    UNION ALL
    SELECT t.kind, sum(e.amount) FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
     WHERE e.account_id = :a AND e.created_at >= :start AND e.created_at < :end
     GROUP BY t.kind""")


def statement_lines(user, month: Month) -> list[tuple[str, int]]:
    """(line, tokens) from "opening balance" to "closing balance"; creators only (`Forbidden`)."""
    require_creator(user, CREATORS_ONLY)
    earnings = ledger.account_for(user.id, "earnings")
    sums: dict[str | None, int] = {}
    if earnings is not None:
        rows = db.session.execute(_SUMS, {"a": earnings.id, "start": month.start, "end": month.end})
        sums = {r.kind: int(r.tokens) for r in rows}
    opening = sums.pop(None, 0)
    # Taken first: a refunded call block counts against "calls" on the dashboards, but
    # the statement shows what was clawed back on its own line.
    others = [(label, sum(sums.pop(k, 0) for k in kinds)) for label, kinds in OTHER_LINES]
    lines = [("opening balance", opening)]
    for source in SOURCES:
        lines.append((f"earnings: {source}", sum(sums.pop(k, 0) for k, s in EARNING_KINDS.items() if s == source)))
    lines += others
    lines.append(("other", sum(sums.values())))
    lines.append(("closing balance", sum(tokens for _, tokens in lines)))
    return lines


def statement_csv(user, raw_month) -> tuple[str, str]:
    """(CSV text, file name) of the month's statement: a header, then one line per
    `statement_lines` entry with its tokens and their payout value. Raises
    `Forbidden` (fans), `InvalidValue` (bad month)."""
    require_creator(user, CREATORS_ONLY)
    month = parse_month(raw_month)
    currency = current_app.config["CURRENCY"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    for label, tokens in statement_lines(user, month):
        writer.writerow([label, tokens, _decimal(payout_cents(tokens)), currency])
    return buf.getvalue(), f"payouts-statement-{month.label}.csv"


def _decimal(cents: int) -> str:
    """Integer cents as a plain decimal a spreadsheet reads: -123456 → "-1234.56"."""
    whole, part = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole}.{part:02d}"
