"""GET /api/payouts/statement?month=YYYY-MM: a creator's month of earnings as CSV, from
the opening balance to the closing one, every line exact (DESIGN.md §11)."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from app import ledger
from app.calls import service as calls
from app.extensions import db
from app.payouts import service
from app.payouts.jobs import pay_payout
from app.streams import service as streams
from app.streams import tickets
from app.tips import service as tips
from tests.helpers import assert_error
from tests.payouts.helpers import make_ready, request


def last_transfer_id() -> int:
    return db.session.scalar(text("SELECT coalesce(max(id), 0) FROM ledger_transfers"))


def date_transfers_since(mark: int, at: datetime) -> None:
    """Date every transfer after `mark` (and its entries) at `at`: a month of history made
    now. Entries are immutable, so the guard triggers are off for this statement."""
    db.session.commit()
    db.session.execute(text("SET LOCAL session_replication_role = replica"))
    db.session.execute(text("UPDATE ledger_entries SET created_at = :at WHERE transfer_id > :t"), {"t": mark, "at": at})
    db.session.execute(text("UPDATE ledger_transfers SET created_at = :at WHERE id > :t"), {"t": mark, "at": at})
    db.session.commit()


def statement(client, headers, month) -> list[list[str]]:
    resp = client.get(f"/api/payouts/statement?month={month}", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="payouts-statement-{month}.csv"'
    return list(csv.reader(io.StringIO(resp.get_data(as_text=True))))


def lines(rows) -> dict[str, int]:
    assert rows[0] == ["line", "tokens", "amount", "currency"]
    return {label: int(tokens) for label, tokens, _, _ in rows[1:]}


@pytest.fixture()
def two_months(ctx, make_creator, make_fan, make_stream, make_call):
    """A creator who earned from tips, a show and a call in March 2025, then in April took
    a payout (paid), asked for another (rejected) and had a call block clawed back."""
    creator = make_creator()
    mark = last_transfer_id()
    tips.send_tip(make_fan(balance=5000), creator.id, 5000, "", None, f"t-{uuid.uuid4()}", confirmed=True)  # 4,000 earned
    show = make_stream(creator, "private", title="Show", ticket_price=100)
    tickets.checkout(make_fan(balance=100), show)
    streams.change_status(creator, show.id, "start")
    streams.change_status(creator, show.id, "end")  # settled: 80 earned
    fan, _, call_id = make_call(rate=60, creator=creator)  # block 0: 30 tokens, 24 earned
    calls.end(fan, call_id)
    date_transfers_since(mark, datetime(2025, 3, 15, 12, tzinfo=timezone.utc))

    make_ready(creator)
    mark = last_transfer_id()
    paid = request(creator, 2000).payout
    assert pay_payout(paid.id) == "paid"
    operator = make_fan()
    operator.is_operator = True
    db.session.commit()
    service.reject(operator, request(creator, 2000).payout.id, "Please verify your identity")
    earnings = ledger.account_for(creator.id, "earnings")
    ledger.lock_account(earnings)
    ledger.transfer(ledger.TransferKind.CALL_REFUND, f"call:{call_id}:refund:block:0:test",
                    [ledger.Leg(earnings, -24), ledger.Leg(ledger.system_account("platform_fees"), 24)])
    db.session.commit()
    date_transfers_since(mark, datetime(2025, 4, 30, 23, 59, 59, tzinfo=timezone.utc))
    return creator


def test_statement_lines_add_up_from_opening_to_closing(client, two_months, api_headers):
    headers = api_headers(two_months)
    march = statement(client, headers, "2025-03")
    assert lines(march) == {"opening balance": 0, "earnings: tips": 4000, "earnings: tickets": 80,
                            "earnings: calls": 24, "payouts": 0, "payouts returned": 0, "refunds clawed back": 0,
                            "other": 0, "closing balance": 4104}
    assert march[-1] == ["closing balance", "4104", "41.04", "usd"]

    april = lines(statement(client, headers, "2025-04"))
    assert april == {"opening balance": 4104, "earnings: tips": 0, "earnings: tickets": 0, "earnings: calls": 0,
                     "payouts": -4000, "payouts returned": 2000, "refunds clawed back": -24, "other": 0,
                     "closing balance": 2080}
    assert statement(client, headers, "2025-04")[5] == ["payouts", "-4000", "-40.00", "usd"]
    assert lines(statement(client, headers, "2025-02"))["closing balance"] == 0
    may = lines(statement(client, headers, "2025-05"))
    assert may["opening balance"] == may["closing balance"] == 2080
    # The closing balance of the last month is the balance now.
    db.session.rollback()
    assert ledger.balance_of(ledger.account_for(two_months.id, "earnings")) == 2080


@pytest.mark.parametrize("month", ["2025-13", "2025-00", "2025-1", "25-01", "2025-01-01", "", "1969-12", "9999-12",
                                   "２０２５-01", "2025-0١", "x" * 100, "2025 -01"])
def test_a_bad_month_is_422(client, ctx, make_creator, api_headers, month):
    resp = client.get("/api/payouts/statement", query_string={"month": month}, headers=api_headers(make_creator()))
    assert_error(resp, 422, field="month")


def test_the_statement_needs_a_month_and_is_for_creators(client, ctx, make_creator, make_fan, api_headers):
    assert_error(client.get("/api/payouts/statement", headers=api_headers(make_creator())), 422, field="month")
    assert_error(client.get("/api/payouts/statement?month=2025-03", headers=api_headers(make_fan())), 403,
                 "not_a_creator")
    assert_error(client.get("/api/payouts/statement?month=2025-03"), 401)


def test_a_creator_with_no_history_gets_zeros(client, ctx, make_creator, api_headers):
    rows = statement(client, api_headers(make_creator()), "2025-03")
    assert set(lines(rows).values()) == {0} and len(rows) == 10
