"""CSV exports: a creator's earnings and a user's spending, entry by entry.

Streamed from a server-side cursor in chunks, so memory stays constant however
long the history; text cells a spreadsheet would run as a formula start with `'`.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timezone

from app import ledger
from app.auth.service import require_creator
from app.dashboard import queries
from app.dashboard.creator import NOT_A_CREATOR
from app.dashboard.fan import reference
from app.dashboard.ranges import midnight, parse_range, start_day
from app.dashboard.sources import EARNING_KINDS, LINE_TYPES, SPENDING_ACCOUNTS
from app.extensions import db

EARNINGS_CSV_HEADER = ["date", "source", "fan", "gross", "creator_share", "platform_fee", "reference"]
SPENDING_CSV_HEADER = ["date", "type", "creator", "amount", "reference"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """A text cell a spreadsheet will not run: formula-like values get a leading `'`."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_lines(header: list[str], rows: Iterator[list]) -> Iterator[str]:
    """CSV text in chunks of ~500 lines (one chunk per write keeps streaming cheap)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_earnings_csv(creator, range_: str) -> Iterator[str]:
    """CSV text (header, then one line per earning entry in the range, oldest
    first): date (UTC), source, fan display name (empty for a show's
    settlement), gross, creator share, platform fee, reference (the transfer's
    key). A call block's refund is a line of its own with the three amounts
    negative; payouts are not earnings and have no line. Streamed from a
    server-side cursor: constant memory. Text cells that a spreadsheet would
    read as a formula start with `'`. Raises like `creator_earnings` (before the
    first chunk)."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    start = start_day(range_)
    account_id = queries.account_id(creator.id, "earnings")
    if account_id is None:
        return _csv_lines(EARNINGS_CSV_HEADER, iter(()))
    params = {"a": account_id, "lo": queries.first_entry_id([account_id], start), "ts": midnight(start),
              "fees": ledger.system_account("platform_fees").id, "kinds": list(EARNING_KINDS)}
    db.session.commit()  # nothing held open while the export streams
    rows = ([_iso(r.created_at), EARNING_KINDS[r.kind], csv_safe(r.fan), int(r.gross), int(r.amount), int(r.fee),
             csv_safe(r.idempotency_key)]
            for r in queries.stream_rows(queries.EARNINGS_EXPORT, params))
    return _csv_lines(EARNINGS_CSV_HEADER, rows)


def export_spending_csv(user, range_: str) -> Iterator[str]:
    """CSV text: header, then one line per payment of the user in the range, oldest
    first (date UTC, type, creator, tokens spent — a refund is negative, all of
    it, also the part that repaid what the user owed —, reference), counted as
    `fan_spending`. Streamed like `export_earnings_csv`."""
    range_ = parse_range(range_)
    start = start_day(range_)
    accounts = queries.account_ids(user.id, SPENDING_ACCOUNTS)
    if not accounts:
        return _csv_lines(SPENDING_CSV_HEADER, iter(()))
    params = {"a": accounts, "lo": queries.first_entry_id(accounts, start), "ts": midnight(start),
              "kinds": list(LINE_TYPES)}
    db.session.commit()
    rows = ([_iso(r.created_at), LINE_TYPES[r.transfer_kind], csv_safe(r.creator), -amount,
             csv_safe(reference(r.transfer_kind, r.metadata or {}, amount))]
            for r, amount in queries.by_transfer(queries.stream_rows(queries.SPENDING_EXPORT, params)))
    return _csv_lines(SPENDING_CSV_HEADER, rows)
