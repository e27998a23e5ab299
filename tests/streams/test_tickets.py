"""Tickets for private shows: checkout into escrow, settlement, refunds, no-shows
(DESIGN.md §4 Money, §5 Streams & tickets, §7 JSON API) — real PostgreSQL,
real Redis, real threads and processes, no mocks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import embedded, jobs, ledger
from app.auth.models import User
from app.extensions import db
from app.streams import cron
from app.streams import service as streams
from app.streams import tickets
from app.wallet import service as wallet
from tests.helpers import assert_error, run_together

ROOT = Path(__file__).resolve().parents[2]
# Not a multiple of 5: the 80/20 split of one ticket (5/2) differs from the split of
# the total (e.g. 560/140 for 100 tickets), so settling per ticket would be caught.
PRICE = 7

# ---- helpers ------------------------------------------------------------------------


def checkout_url(stream_id) -> str:
    return f"/api/streams/{stream_id}/tickets/checkout"


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def scalar(sql: str, **params):
    return db.session.scalar(text(sql), params)


def balance(user_id: int) -> int:
    return ledger.balance_of(ledger.account_for(user_id, "wallet"))


def escrow_balance(stream_id: int) -> int:
    return ledger.balance_of(ledger.escrow_account(scalar("SELECT escrow_account_id FROM streams WHERE id = :s",
                                                   s=stream_id)))


def earnings(user_id: int) -> int:
    return ledger.balance_of(ledger.account_for(user_id, "earnings"))


def platform_fees() -> int:
    return ledger.balance_of(ledger.system_account("platform_fees"))


def stream_row(stream_id: int):
    return db.session.execute(text("SELECT * FROM streams WHERE id = :s"), {"s": stream_id}).mappings().one()


def ticket_counts(stream_id: int) -> dict:
    rows = db.session.execute(text("SELECT status, count(*) FROM tickets WHERE stream_id = :s GROUP BY status"),
                              {"s": stream_id}).all()
    return {"valid": 0, "refunded": 0, **{status: n for status, n in rows}}


def table_counts() -> tuple:
    """Everything a checkout could write: tickets, transfers, entries."""
    return tuple(scalar(f"SELECT count(*) FROM {t}") for t in ("tickets", "ledger_transfers", "ledger_entries"))


def entries_of_kind(user_id: int, kind: str) -> int:
    """How many `kind` transfers touched the user's wallet."""
    return scalar("SELECT count(*) FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id "
                  "WHERE e.account_id = :a AND t.kind = :k", a=ledger.account_for(user_id, "wallet").id, k=kind)


def refund_counts(user_ids) -> dict:
    """user id → number of ticket_refund entries on their wallet."""
    return {uid: entries_of_kind(uid, "ticket_refund") for uid in user_ids}


def user(user_id: int) -> User:
    return db.session.get(User, user_id)


@pytest.fixture()
def show(ctx, make_creator, api_headers, make_stream):
    """(creator, creator headers, id of a scheduled private show at PRICE)."""
    creator = make_creator()
    return creator, api_headers(creator), make_stream(creator, "private", title="VIP night", ticket_price=PRICE).id


@pytest.fixture()
def sold_show(ctx, make_creator, make_fan, make_stream):
    """sold_show(n, title=…, starts_at=None) → (creator id, stream id, [fan ids]): a
    scheduled private show at PRICE with n tickets, each fan funded with exactly PRICE
    (so after buying every wallet is 0, after a refund every wallet is PRICE)."""
    def _make(n, title="VIP night", starts_at=None):
        creator = make_creator()
        stream = make_stream(creator, "private", title=title, ticket_price=PRICE, starts_at=starts_at)
        fan_ids = []
        for _ in range(n):
            fan = make_fan(balance=PRICE)
            assert tickets.checkout(fan, stream).created
            fan_ids.append(fan.id)
        assert ticket_counts(stream.id) == {"valid": n, "refunded": 0}
        assert escrow_balance(stream.id) == n * PRICE
        return creator.id, stream.id, fan_ids
    return _make


def assert_all_refunded_once(stream_id: int, fan_ids: list[int]) -> None:
    assert ticket_counts(stream_id) == {"valid": 0, "refunded": len(fan_ids)}
    assert {uid: balance(uid) for uid in fan_ids} == {uid: PRICE for uid in fan_ids}
    assert refund_counts(fan_ids) == {uid: 1 for uid in fan_ids}
    assert escrow_balance(stream_id) == 0
    assert scalar("SELECT count(*) FROM tickets WHERE stream_id = :s AND (refund_transfer_id IS NULL "
                  "OR refunded_at IS NULL)", s=stream_id) == 0
    assert stream_row(stream_id)["refunded_at"] is not None
    assert ledger.verify() == []


# ---- 1. checkout --------------------------------------------------------------------


def test_checkout_is_201_debits_exactly_the_price_and_grants_access(client, new_client, show, make_fan,
                                                                   make_creator, api_headers):
    creator, creator_headers, sid = show
    fan, other = make_fan(balance=1000), make_fan(balance=1000)
    fan_headers, other_headers = api_headers(fan), api_headers(other)
    transfers_before = scalar("SELECT count(*) FROM ledger_transfers")

    resp = client.post(checkout_url(sid), headers=fan_headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"ticket", "newBalance"}
    ticket = body["ticket"]
    assert isinstance(ticket["id"], int)
    assert (ticket["streamId"], ticket["fanId"], ticket["price"], ticket["status"]) == (sid, fan.id, PRICE, "valid")
    assert datetime.fromisoformat(ticket["createdAt"]).tzinfo is not None and ticket["refundedAt"] is None
    assert body["newBalance"] == 1000 - PRICE == balance(fan.id)
    assert balance(other.id) == 1000
    assert escrow_balance(sid) == PRICE
    # One transfer, keyed per show and fan, and its ticket row.
    assert scalar("SELECT count(*) FROM ledger_transfers") == transfers_before + 1
    row = db.session.execute(text("SELECT t.status, t.price, t.fan_id, x.idempotency_key, x.kind FROM tickets t "
                                  "JOIN ledger_transfers x ON x.id = t.transfer_id WHERE t.id = :i"),
                             {"i": ticket["id"]}).one()
    assert tuple(row) == ("valid", PRICE, fan.id, f"ticket:{sid}:{fan.id}", "ticket")
    assert ledger.verify() == []

    def access(headers):
        r = client.get(f"/api/streams/{sid}/access", headers=headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.get_json()["hasAccess"]

    assert access(fan_headers) is True
    assert access(other_headers) is False
    assert access(creator_headers) is True
    assert access(api_headers(make_creator())) is False
    # Anonymous: /api routes need credentials unless marked public; /access is not.
    assert_error(new_client().get(f"/api/streams/{sid}/access"), 401, "unauthorized")
    # The holder learns the channel; the other fan does not.
    channel = stream_row(sid)["channel"]
    assert client.get(f"/api/streams/{sid}", headers=fan_headers).get_json()["stream"]["channel"] == channel
    assert client.get(f"/api/streams/{sid}", headers=other_headers).get_json()["stream"]["channel"] is None


def test_the_creator_has_access_without_a_ticket_in_every_state(client, show):
    _, headers, sid = show
    for action in (None, "start", "end"):
        if action:
            assert client.post(f"/api/streams/{sid}/{action}", headers=headers).status_code == 200
        resp = client.get(f"/api/streams/{sid}/access", headers=headers)
        assert resp.status_code == 200 and resp.get_json() == {"hasAccess": True}
    assert scalar("SELECT count(*) FROM tickets WHERE stream_id = :s", s=sid) == 0


# ---- 2. repeat checkout -------------------------------------------------------------


def test_repeat_checkout_is_200_with_the_same_ticket_and_no_second_charge(client, show, make_fan, api_headers):
    _, _, sid = show
    fan = make_fan(balance=100)
    headers = api_headers(fan)
    first = client.post(checkout_url(sid), headers=headers)
    assert first.status_code == 201
    counts = table_counts()
    for _ in range(3):
        again = client.post(checkout_url(sid), headers=headers)
        assert again.status_code == 200, again.get_data(as_text=True)
        assert again.get_json()["ticket"]["id"] == first.get_json()["ticket"]["id"]
        assert again.get_json()["ticket"]["status"] == "valid"
        assert again.get_json()["newBalance"] == 100 - PRICE
    assert table_counts() == counts
    assert balance(fan.id) == 100 - PRICE
    assert entries_of_kind(fan.id, "ticket") == 1
    assert escrow_balance(sid) == PRICE


# ---- 3. refusals --------------------------------------------------------------------


def test_own_show_is_403_own_stream(client, show):
    creator, headers, sid = show
    wallet.purchase_tokens(creator, 100, f"seed-own-show-{sid}")
    before = table_counts()
    assert_error(client.post(checkout_url(sid), headers=headers), 403, "own_stream")
    assert table_counts() == before
    assert balance(creator.id) == 100 and escrow_balance(sid) == 0


def test_public_stream_is_409_not_ticketed(client, make_stream, make_fan, api_headers):
    sid = make_stream(title="Open").id
    fan = make_fan(balance=100)
    before = table_counts()
    assert_error(client.post(checkout_url(sid), headers=api_headers(fan)), 409, "not_ticketed")
    assert table_counts() == before and balance(fan.id) == 100


@pytest.mark.parametrize("history", [["start", "end"], ["cancel"], ["start", "cancel"]])
def test_ended_or_canceled_show_is_409_stream_closed(client, show, make_fan, api_headers, history):
    creator, headers, sid = show
    for action in history:
        assert client.post(f"/api/streams/{sid}/{action}", headers=headers).status_code == 200
    fan = make_fan(balance=100)
    fan_headers = api_headers(fan)
    before = table_counts()
    assert_error(client.post(checkout_url(sid), headers=fan_headers), 409, "stream_closed")
    assert table_counts() == before and balance(fan.id) == 100
    assert client.get(f"/api/streams/{sid}/access", headers=fan_headers).get_json()["hasAccess"] is False
    assert ledger.verify() == []


def test_unknown_stream_is_404(client, make_fan, api_headers):
    headers = api_headers(make_fan(balance=100))
    missing = scalar("SELECT coalesce(max(id), 0) + 1000 FROM streams")
    before = table_counts()
    for sid in (missing, 0, 2 ** 62, 10 ** 20):
        assert_error(client.post(checkout_url(sid), headers=headers), 404)
    assert table_counts() == before


@pytest.mark.parametrize("path", ["/api/streams/abc/tickets/checkout", "/api/streams/-1/tickets/checkout",
                                  "/api/streams/1.5/tickets/checkout", "/api/streams/%20/tickets/checkout"])
def test_non_numeric_id_is_404(client, make_fan, api_headers, path):
    headers = api_headers(make_fan(balance=100))
    before = table_counts()
    assert_error(client.post(path, headers=headers), 404)
    assert table_counts() == before


@pytest.mark.parametrize("funds", [0, 1, PRICE - 1])
def test_insufficient_funds_is_402_with_the_shortfall(client, show, make_fan, api_headers, funds):
    _, _, sid = show
    fan = make_fan(balance=funds)
    headers = api_headers(fan)
    before = table_counts()
    body = assert_error(client.post(checkout_url(sid), headers=headers), 402, "insufficient_funds")
    assert body["required"] == PRICE - funds
    assert table_counts() == before
    assert balance(fan.id) == funds and escrow_balance(sid) == 0
    assert client.get(f"/api/streams/{sid}/access", headers=headers).get_json()["hasAccess"] is False
    # Topping up by exactly the shortfall makes the same checkout succeed.
    wallet.purchase_tokens(fan, body["required"], f"topup-{fan.id}")
    resp = client.post(checkout_url(sid), headers=headers)
    assert resp.status_code == 201 and resp.get_json()["newBalance"] == 0
    assert ledger.verify() == []


def test_cookie_session_without_csrf_token_is_refused_and_writes_nothing(client, login, show, make_fan):
    _, _, sid = show
    fan = make_fan(balance=100)
    token = login(fan)
    before = table_counts()
    assert_error(client.post(checkout_url(sid)), 400, "csrf_failed")
    assert_error(client.post(checkout_url(sid), headers={"X-CSRFToken": "forged"}), 400, "csrf_failed")
    assert table_counts() == before and balance(fan.id) == 100
    # The same session with its token is let through: the refusal was the CSRF check.
    resp = client.post(checkout_url(sid), headers={"X-CSRFToken": token})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["ticket"]["fanId"] == fan.id and balance(fan.id) == 100 - PRICE


def test_anonymous_checkout_is_401_not_a_csrf_error(client, show):
    _, _, sid = show
    before = table_counts()
    assert_error(client.post(checkout_url(sid)), 401, "unauthorized")
    assert_error(client.post(checkout_url(sid), headers={"Authorization": "Bearer nope"}), 401)
    assert table_counts() == before


# ---- 4–5. concurrency -------------------------------------------------------------------


def test_100_fans_buying_at_once_each_charged_once_then_the_show_settles_80_20(app, make_creator, make_fan,
                                                                               api_headers, make_stream):
    n = 100
    creator = make_creator()
    creator_id = creator.id
    sid = make_stream(creator, "private", title="Big night", ticket_price=PRICE).id
    fans = [make_fan(balance=PRICE) for _ in range(n)]
    fan_ids = [f.id for f in fans]
    headers = [api_headers(f) for f in fans]

    def buy(i):
        resp = app.test_client().post(checkout_url(sid), headers=headers[i])
        return resp.status_code, resp.get_json()

    results = run_together(app, n, buy)
    assert [status for status, _ in results] == [201] * n, [r for r in results if r[0] != 201][:3]
    assert [body["ticket"]["fanId"] for _, body in results] == fan_ids
    assert len({body["ticket"]["id"] for _, body in results}) == n
    assert {body["newBalance"] for _, body in results} == {0}
    assert {uid: balance(uid) for uid in fan_ids} == {uid: 0 for uid in fan_ids}
    assert {uid: entries_of_kind(uid, "ticket") for uid in fan_ids} == {uid: 1 for uid in fan_ids}
    assert ticket_counts(sid) == {"valid": n, "refunded": 0}
    assert escrow_balance(sid) == n * PRICE
    assert ledger.verify() == []

    earnings_before, fees_before = earnings(creator_id), platform_fees()
    streams.change_status(user(creator_id), sid, "start")
    assert escrow_balance(sid) == n * PRICE  # going live moves nothing
    streams.change_status(user(creator_id), sid, "end")
    creator_share, platform_share = ledger.split(n * PRICE)
    assert (creator_share, platform_share) == (560, 140)
    assert earnings(creator_id) - earnings_before == creator_share
    assert platform_fees() - fees_before == platform_share
    assert escrow_balance(sid) == 0
    settlement = db.session.execute(text("SELECT x.kind, x.idempotency_key FROM streams s JOIN ledger_transfers x "
                                         "ON x.id = s.settlement_transfer_id WHERE s.id = :s"), {"s": sid}).one()
    assert tuple(settlement) == ("ticket_settlement", f"stream:{sid}:settle")
    # Holders keep their (valid) tickets; nobody was refunded.
    assert ticket_counts(sid) == {"valid": n, "refunded": 0}
    assert ledger.verify() == []


def test_one_fan_double_clicking_20_times_at_once_gets_one_ticket_charged_once(app, show, make_fan, api_headers):
    _, _, sid = show
    fan = make_fan(balance=PRICE)  # exactly one ticket's worth: a second charge could not even be paid
    fan_id = fan.id
    headers = api_headers(fan)

    def buy(i):
        resp = app.test_client().post(checkout_url(sid), headers=headers)
        return resp.status_code, resp.get_json()

    results = run_together(app, 20, buy)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 19 + [201], results
    assert len({body["ticket"]["id"] for _, body in results}) == 1
    assert {body["newBalance"] for _, body in results} == {0}
    assert balance(fan_id) == 0
    assert scalar("SELECT count(*) FROM tickets WHERE stream_id = :s AND fan_id = :f", s=sid, f=fan_id) == 1
    assert entries_of_kind(fan_id, "ticket") == 1
    assert escrow_balance(sid) == PRICE
    assert ledger.verify() == []


@pytest.mark.parametrize("action", ["end", "cancel"])
def test_checkouts_racing_the_end_or_cancel_of_a_live_show_never_strand_money(app, make_creator, make_fan,
                                                                              api_headers, action, make_stream):
    """The show row's lock orders them: a checkout either lands before the show closes
    (and is settled or refunded with it) or is refused; escrow never keeps a token."""
    n = 30
    creator = make_creator()
    creator_id, creator_headers = creator.id, api_headers(creator)
    sid = make_stream(creator, "private", title="Race", ticket_price=PRICE, live=True).id
    fans = [make_fan(balance=PRICE) for _ in range(n)]
    fan_ids, headers = [f.id for f in fans], [api_headers(f) for f in fans]
    earnings_before = earnings(creator_id)

    def call(i):
        if i == n:
            return "close", app.test_client().post(f"/api/streams/{sid}/{action}",
                                                   headers=creator_headers).status_code
        resp = app.test_client().post(checkout_url(sid), headers=headers[i])
        return resp.status_code, resp.get_json()

    results = run_together(app, n + 1, call)
    assert results[n] == ("close", 200)
    bought = [fan_ids[i] for i in range(n) if results[i][0] == 201]
    refused = [fan_ids[i] for i in range(n) if results[i][0] == 409]
    assert len(bought) + len(refused) == n, results
    assert all(results[i][1]["code"] == "stream_closed" for i in range(n) if results[i][0] == 409)
    assert ticket_counts(sid)["valid"] == len(bought)
    assert {uid: balance(uid) for uid in refused} == {uid: PRICE for uid in refused}
    if action == "end":
        assert escrow_balance(sid) == 0
        assert earnings(creator_id) - earnings_before == ledger.split(len(bought) * PRICE)[0]
        assert {uid: balance(uid) for uid in bought} == {uid: 0 for uid in bought}
    else:
        assert escrow_balance(sid) == len(bought) * PRICE
        assert ledger.verify() == []
        assert tickets.refund_show(sid) == len(bought)
        assert {uid: balance(uid) for uid in fan_ids} == {uid: PRICE for uid in fan_ids}
        assert escrow_balance(sid) == 0 and earnings(creator_id) == earnings_before
    assert ledger.verify() == []


# ---- 6. refunds ---------------------------------------------------------------------------


def test_cancel_then_refund_gives_every_fan_the_price_back_exactly_once(client, sold_show, api_headers):
    creator_id, sid, fan_ids = sold_show(100)
    resp = client.post(f"/api/streams/{sid}/cancel", headers=api_headers(user(creator_id)))
    assert resp.status_code == 200 and resp.get_json()["stream"]["status"] == "canceled"
    row = stream_row(sid)
    assert row["cancel_reason"] == "creator" and row["refunded_at"] is None
    # Canceling alone moves nothing: the escrow still holds every ticket.
    assert escrow_balance(sid) == 100 * PRICE and ledger.verify() == []

    assert tickets.refund_show(sid) == 100
    assert_all_refunded_once(sid, fan_ids)
    refunded_at = stream_row(sid)["refunded_at"]
    counts = table_counts()
    assert tickets.refund_show(sid) == 0
    assert table_counts() == counts
    assert stream_row(sid)["refunded_at"] == refunded_at
    assert_all_refunded_once(sid, fan_ids)


@pytest.mark.parametrize("runners,batch_size", [(2, tickets.REFUND_BATCH), (4, 7)])
def test_concurrent_refund_runs_refund_every_ticket_exactly_once(app, sold_show, runners, batch_size):
    creator_id, sid, fan_ids = sold_show(100)
    streams.change_status(user(creator_id), sid, "cancel")

    results = run_together(app, runners, lambda i: tickets.refund_show(sid, batch_size=batch_size))
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 100, results
    assert_all_refunded_once(sid, fan_ids)


def test_refund_show_does_nothing_for_a_show_that_is_not_canceled(sold_show):
    creator_id, sid, fan_ids = sold_show(2)
    counts = table_counts()
    assert tickets.refund_show(sid) == 0
    streams.change_status(user(creator_id), sid, "start")
    assert tickets.refund_show(sid) == 0
    assert table_counts() == counts
    assert ticket_counts(sid) == {"valid": 2, "refunded": 0}
    assert {uid: balance(uid) for uid in fan_ids} == {uid: 0 for uid in fan_ids}
    assert stream_row(sid)["refunded_at"] is None


# ---- 7. killed half way ----------------------------------------------------------------------

CHILD = """
import sys
from app import create_app
from app.streams.tickets import refund_show
app = create_app()
with app.app_context():
    print("refunded", refund_show(int(sys.argv[1]), batch_size=10), flush=True)
"""


def test_refund_killed_half_way_resumes_and_refunds_every_ticket_once(services, sold_show, tmp_path):
    creator_id, sid, fan_ids = sold_show(100)
    streams.change_status(user(creator_id), sid, "cancel")
    ticket_ids = list(db.session.scalars(text("SELECT id FROM tickets WHERE stream_id = :s ORDER BY id"),
                                         {"s": sid}))
    assert len(ticket_ids) == 100
    db.session.commit()
    dsn = libpq(services[0])

    def refunded_now() -> int:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM tickets WHERE stream_id = %s AND status = 'refunded'",
                                (sid,)).fetchone()[0]

    def lock_waiters() -> int:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND wait_event_type = 'Lock'").fetchone()[0]

    locker = psycopg.connect(dsn)  # an open transaction holding the 51st ticket
    log_path = tmp_path / "child.log"
    child = None
    try:
        locker.execute("SELECT id FROM tickets WHERE id = %s FOR UPDATE", (ticket_ids[50],))
        env = embedded.env_with_services(services[0], services[1])
        env.update(APP_ENV="test", SECRET_KEY="tickets-test-secret", PYTHONUNBUFFERED="1",
                   INSTANCE_DIR=str(tmp_path / "instance"))
        env.pop("FLASK_DEBUG", None)
        with open(log_path, "wb") as log:
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(sid)], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (refunded_now() < 50 or lock_waiters() < 1):
            assert child.poll() is None, f"child exited early: {log_path.read_text()}"
            time.sleep(0.05)
        assert refunded_now() == 50, log_path.read_text()
        assert lock_waiters() >= 1, "the child should be waiting for the 51st ticket's lock"
        time.sleep(0.3)
        assert refunded_now() == 50 and child.poll() is None  # blocked, not finishing behind our back
        os.killpg(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
        locker.rollback()
        locker.close()

    # Exactly the first five batches were committed, each with its money.
    db.session.rollback()
    statuses = dict(db.session.execute(text("SELECT id, status FROM tickets WHERE stream_id = :s"), {"s": sid}).all())
    assert [statuses[t] for t in ticket_ids] == ["refunded"] * 50 + ["valid"] * 50
    assert ticket_counts(sid) == {"valid": 50, "refunded": 50}
    first_half = set(scalar("SELECT array_agg(fan_id) FROM tickets WHERE stream_id = :s AND status = 'refunded'",
                            s=sid))
    assert {uid: balance(uid) for uid in fan_ids} == {uid: PRICE if uid in first_half else 0 for uid in fan_ids}
    assert escrow_balance(sid) == 50 * PRICE
    assert scalar("SELECT count(*) FROM ledger_transfers WHERE idempotency_key LIKE :k",
                  k=f"stream:{sid}:refund:%") == 5
    assert stream_row(sid)["refunded_at"] is None
    assert ledger.verify() == []
    assert sid in streams.shows_awaiting_refunds()

    # Running it again finishes the job: the other 50, once each.
    assert tickets.refund_show(sid) == 50
    assert_all_refunded_once(sid, fan_ids)
    assert scalar("SELECT count(*) FROM ledger_transfers WHERE idempotency_key LIKE :k",
                  k=f"stream:{sid}:refund:%") == 6
    assert sid not in streams.shows_awaiting_refunds()


# ---- 8. access after a refund -------------------------------------------------------------------


def test_a_refunded_fan_loses_access_and_the_channel_the_creator_keeps_both(client, sold_show, api_headers):
    creator_id, sid, fan_ids = sold_show(2)
    fan_headers, creator_headers = api_headers(user(fan_ids[0])), api_headers(user(creator_id))
    channel = stream_row(sid)["channel"]

    def view(headers):
        access = client.get(f"/api/streams/{sid}/access", headers=headers)
        stream = client.get(f"/api/streams/{sid}", headers=headers)
        assert access.status_code == 200 and stream.status_code == 200
        return access.get_json()["hasAccess"], stream.get_json()["stream"]["channel"]

    assert view(fan_headers) == (True, channel)
    assert client.post(f"/api/streams/{sid}/cancel", headers=creator_headers).status_code == 200
    assert tickets.refund_show(sid) == 2
    assert view(fan_headers) == (False, None)
    assert channel not in client.get(f"/api/streams/{sid}", headers=fan_headers).get_data(as_text=True)
    assert view(creator_headers) == (True, channel)
    # And they cannot buy their way back into a canceled show.
    assert_error(client.post(checkout_url(sid), headers=fan_headers), 409, "stream_closed")
    assert balance(fan_ids[0]) == PRICE


# ---- 9. no-shows --------------------------------------------------------------------------------


def minutes_ago(minutes: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat()


def test_sweep_cancels_and_refunds_a_no_show_and_leaves_the_rest(sold_show):
    _, no_show, no_show_fans = sold_show(3, title="Never came", starts_at=minutes_ago(30))
    _, recent, recent_fans = sold_show(1, starts_at=minutes_ago(5))
    _, untimed, untimed_fans = sold_show(1)
    live_creator, live, live_fans = sold_show(1, starts_at=minutes_ago(30))
    streams.change_status(user(live_creator), live, "start")
    spared = {recent: recent_fans, untimed: untimed_fans, live: live_fans}
    db.session.commit()

    result = cron.sweep_shows()
    assert no_show in result["canceled"] and result["refunded"][no_show] == 3
    assert not set(spared) & set(result["canceled"]) and not set(spared) & set(result["refunded"])
    row = stream_row(no_show)
    assert (row["status"], row["cancel_reason"]) == ("canceled", "no_show")
    assert_all_refunded_once(no_show, no_show_fans)
    reasons = [item.reason for item in wallet.history(user(no_show_fans[0])).items]
    assert reasons[0] == "Refund: Never came did not start in time"
    for sid, fans in spared.items():
        assert stream_row(sid)["status"] == ("live" if sid == live else "scheduled")
        assert stream_row(sid)["cancel_reason"] is None
        assert ticket_counts(sid) == {"valid": len(fans), "refunded": 0}
        assert escrow_balance(sid) == len(fans) * PRICE
        assert {uid: balance(uid) for uid in fans} == {uid: 0 for uid in fans}

    counts = table_counts()
    assert cron.sweep_shows() == {"canceled": [], "refunded": {}}
    assert table_counts() == counts
    assert stream_row(no_show)["status"] == "canceled"
    assert_all_refunded_once(no_show, no_show_fans)


def test_sweep_respects_the_configured_grace(make_app, sold_show):
    _, sid, fans = sold_show(1, starts_at=minutes_ago(30))
    db.session.commit()
    patient = make_app(NO_SHOW_GRACE_MINUTES=60)
    with patient.app_context():
        result = cron.sweep_shows()
    assert sid not in result["canceled"]
    assert stream_row(sid)["status"] == "scheduled" and ticket_counts(sid)["valid"] == 1
    assert cron.sweep_shows()["canceled"].count(sid) == 1  # the default 15 minutes: due
    assert_all_refunded_once(sid, fans)


# ---- 10. the RQ job ----------------------------------------------------------------------------


def test_cancel_queues_a_real_rq_job_that_refunds_the_show(ctx, client, services, sold_show, api_headers):
    creator_id, sid, fan_ids = sold_show(3)
    connection = Redis.from_url(services[1])
    queue = Queue(jobs.queue_name(), connection=connection)
    before = set(queue.job_ids)
    assert client.post(f"/api/streams/{sid}/cancel", headers=api_headers(user(creator_id))).status_code == 200

    mine = [job for job in Job.fetch_many([j for j in queue.job_ids if j not in before], connection=connection)
            if job is not None and job.func_name == "app.streams.jobs.refund_show" and tuple(job.args) == (sid,)]
    assert len(mine) == 1, "canceling a private show must queue exactly one refund job"
    job = mine[0]
    assert ticket_counts(sid)["valid"] == 3  # queued, not run inline

    SimpleWorker([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.get_status() == "finished", job.latest_result()
    assert job.return_value() == 3
    assert_all_refunded_once(sid, fan_ids)


# ---- 11. wallet history ---------------------------------------------------------------------------


def test_wallet_history_names_the_ticket_and_the_refund_escaped_on_the_page(client, login, make_creator,
                                                                          make_fan, make_stream):
    title = "<script>alert(1)</script>"
    creator = make_creator()
    stream = make_stream(creator, "private", title=title, ticket_price=PRICE)
    sid = stream.id
    fan = make_fan(balance=100)
    tickets.checkout(fan, stream)
    reasons = [item.reason for item in wallet.history(fan).items]
    assert reasons == [f"Ticket: {title}", "Bought 100 tokens (test mode)"]

    streams.change_status(creator, sid, "cancel")
    assert tickets.refund_show(sid) == 1
    items = wallet.history(user(fan.id)).items
    assert [i.reason for i in items] == [f"Refund: {title} was canceled", f"Ticket: {title}",
                                         "Bought 100 tokens (test mode)"]
    assert [i.amount for i in items] == [PRICE, -PRICE, 100]

    login(user(fan.id))
    html = client.get("/wallet").get_data(as_text=True)
    assert "Refund: &lt;script&gt;alert(1)&lt;/script&gt; was canceled" in html
    assert "Ticket: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert title not in html


# ---- 12. verify's escrow rule ------------------------------------------------------------------------


def test_verify_reports_a_ticket_whose_money_never_reached_escrow(app, show, make_fan):
    _, _, sid = show
    fan = make_fan(balance=100)
    fan_id = fan.id
    assert ledger.verify() == []
    cli = app.test_cli_runner()
    transfer_id = scalar("SELECT max(id) FROM ledger_transfers")
    ticket_id = scalar("INSERT INTO tickets (stream_id, fan_id, price, transfer_id) VALUES (:s, :f, :p, :t) "
                       "RETURNING id", s=sid, f=fan_id, p=PRICE, t=transfer_id)
    db.session.commit()
    try:
        violations = ledger.verify()
        assert [v.rule for v in violations] == ["escrow_mismatch"], violations
        assert violations[0].detail == f"stream {sid}: escrow holds 0 but its unsettled valid tickets total {PRICE}"
        result = cli.invoke(args=["ledger", "verify"])
        assert result.exit_code == 1
        assert f"escrow_mismatch: stream {sid}" in result.output
    finally:
        db.session.rollback()
        db.session.execute(text("DELETE FROM tickets WHERE id = :i"), {"i": ticket_id})
        db.session.commit()
    assert ledger.verify() == []
    assert cli.invoke(args=["ledger", "verify"]).exit_code == 0
