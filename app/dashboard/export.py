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
from app.dashboard.sources import EARNING_KINDS, LINE_TYPES
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
    key). Streamed from a server-side cursor: constant memory. Text cells that a
    spreadsheet would read as a formula start with `'`. Raises like
    `creator_earnings` (before the first chunk)."""
    require_creator(creator, NOT_A_CREATOR)
    range_ = parse_range(range_)
    start = start_day(range_)
    account_id = queries.account_id(creator.id, "earnings")
    if account_id is None:
        return _csv_lines(EARNINGS_CSV_HEADER, iter(()))
    params = {"a": account_id, "lo": queries.first_entry_id(account_id, start), "ts": midnight(start),
              "fees": ledger.system_account("platform_fees").id}
    db.session.commit()  # nothing held open while the export streams
    rows = ([_iso(r.created_at), EARNING_KINDS.get(r.kind, r.kind), csv_safe(r.fan), int(r.gross or 0),
             int(r.amount), int(r.fee), csv_safe(r.idempotency_key)]
            for r in queries.stream_rows(queries.EARNINGS_EXPORT, params))
    return _csv_lines(EARNINGS_CSV_HEADER, rows)


def export_spending_csv(user, range_: str) -> Iterator[str]:
    """CSV text: header, then one line per spending entry of the user's wallet in
    the range, oldest first (date UTC, type, creator, tokens out — a refund is
    negative —, reference). Streamed like `export_earnings_csv`."""
    range_ = parse_range(range_)
    start = start_day(range_)
    wallet = queries.account_id(user.id, "wallet")
    if wallet is None:
        return _csv_lines(SPENDING_CSV_HEADER, iter(()))
    params = {"a": wallet, "lo": queries.first_entry_id(wallet, start), "ts": midnight(start),
              "kinds": list(LINE_TYPES)}
    db.session.commit()
    rows = ([_iso(r.created_at), LINE_TYPES[r.transfer_kind], csv_safe(r.creator), -int(r.amount),
             csv_safe(reference(r.transfer_kind, r.metadata or {}, int(r.amount)))]
            for r in queries.stream_rows(queries.SPENDING_EXPORT, params))
    return _csv_lines(SPENDING_CSV_HEADER, rows)
