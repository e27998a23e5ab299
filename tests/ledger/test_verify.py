"""`flask ledger verify` finds every kind of damage and exits non-zero on it."""
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from app import ledger

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def raw(services):
    url = make_url(services[0]).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _cli(app):
    return app.test_cli_runner().invoke(args=["ledger", "verify"])


def test_verify_passes_on_a_clean_ledger(app, make_fan):
    make_fan(balance=500)
    result = _cli(app)
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_cached_balance_drift_is_reported_and_fails_the_command(app, raw, make_fan):
    fan = make_fan(balance=500)
    wallet_id = ledger.account_for(fan.id, "wallet").id
    raw.execute("UPDATE ledger_accounts SET balance = balance + 7 WHERE id = %s", (wallet_id,))
    try:
        result = _cli(app)
        assert result.exit_code == 1
        assert f"cached_balance_mismatch: account {wallet_id}: cached balance 507 but entries sum to 500" \
            in result.output
        assert "running_balance_mismatch" in result.output
    finally:
        raw.execute("UPDATE ledger_accounts SET balance = balance - 7 WHERE id = %s", (wallet_id,))
    assert _cli(app).exit_code == 0


def test_tokens_issued_without_a_purchase_are_reported(app, raw, make_fan):
    """A completed purchase row with no matching issuance (or vice versa) breaks issued = purchased."""
    fan = make_fan(balance=100)
    tid = raw.execute("SELECT max(id) FROM ledger_transfers").fetchone()[0]
    pid = raw.execute(
        "INSERT INTO purchases (user_id, amount_tokens, amount_cents, provider, status, transfer_id) "
        "VALUES (%s, 42, 42, 'demo', 'completed', %s) RETURNING id", (fan.id, tid)).fetchone()[0]
    try:
        result = _cli(app)
        assert result.exit_code == 1
        assert "issued_not_purchased" in result.output
    finally:
        raw.execute("DELETE FROM purchases WHERE id = %s", (pid,))
    assert _cli(app).exit_code == 0


def test_verify_command_runs_as_a_real_process_against_the_same_database(services, make_fan):
    """`flask ledger verify` in a shell, pointed at the database by DATABASE_URL."""
    make_fan(balance=10)
    env = {**os.environ, "DATABASE_URL": services[0], "REDIS_URL": services[1], "APP_ENV": "test",
           "SECRET_KEY": "x"}
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "ledger", "verify"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ledger verify: ok" in proc.stdout


def test_ledger_verify_records_its_result_for_the_platform_view(app, ctx):
    from app.extensions import db
    from app.ledger.verify import last_run
    out = app.test_cli_runner().invoke(args=["ledger", "verify"])
    db.session.rollback()
    last = last_run()
    assert last is not None and last.ok == (out.exit_code == 0)
    assert last.violations == (0 if out.exit_code == 0 else last.violations)
    assert last.summary


# ---- the invariants of real money (DESIGN.md §11) ----------------------------

def _rules(app) -> set[str]:
    from app.extensions import db
    with app.app_context():
        found = {v.rule for v in ledger.verify()}
        db.session.remove()
    return found


def test_a_credited_purchase_that_lost_its_status_is_reported(app, raw, make_fan):
    """A purchase whose `purchase:<id>` transfer exists must say it was credited, once."""
    fan = make_fan(balance=40)
    pid, tid = raw.execute("SELECT id, transfer_id FROM purchases WHERE user_id = %s", (fan.id,)).fetchone()
    raw.execute("UPDATE purchases SET status = 'pending', transfer_id = NULL WHERE id = %s", (pid,))
    try:
        assert {"purchase_credit_mismatch", "issued_not_purchased"} <= _rules(app)
    finally:
        raw.execute("UPDATE purchases SET status = 'completed', transfer_id = %s WHERE id = %s", (tid, pid))
    assert _rules(app) == set()


def test_owing_while_holding_tokens_is_reported(app, raw, make_fan):
    fan = make_fan(balance=40)
    with app.app_context():
        from app.extensions import db
        ledger.lock_holder(fan.id)
        db.session.commit()
        debt_id = ledger.account_for(fan.id, "debt").id
    raw.execute("UPDATE ledger_accounts SET balance = -5 WHERE id = %s", (debt_id,))
    try:
        assert "debt_while_holding" in _rules(app)
    finally:
        raw.execute("UPDATE ledger_accounts SET balance = 0 WHERE id = %s", (debt_id,))
    assert _rules(app) == set()


def test_a_debt_made_by_anything_but_a_reversal_is_reported(app, services, make_fan):
    """Checked inside a transaction that is rolled back: entries are immutable."""
    from app.ledger.verify import _CHECKS
    fan = make_fan(balance=40)
    with app.app_context():
        from app.extensions import db
        holder = ledger.lock_holder(fan.id)
        db.session.commit()
    url = make_url(services[0]).set(drivername="postgresql").render_as_string(hide_password=False)
    sql = next(check[1] for check in _CHECKS if check[0] == "debt_mismatch")
    with psycopg.connect(url) as conn:
        tid = conn.execute("INSERT INTO ledger_transfers (kind, idempotency_key) VALUES ('tip', %s) RETURNING id",
                           (f"damage:{fan.id}",)).fetchone()[0]
        conn.execute("INSERT INTO ledger_entries (transfer_id, account_id, amount) VALUES (%s, %s, -7), (%s, %s, 7)",
                     (tid, holder.debt.id, tid, holder.wallet.id))
        found = conn.execute(sql).fetchall()
        conn.rollback()
    assert (fan.id, "tip", -7) in found


def test_tokens_in_transit_without_their_payout_are_reported(app, raw, make_creator):
    creator = make_creator()
    tid = raw.execute("SELECT max(id) FROM ledger_transfers").fetchone()[0]
    payout = raw.execute(
        "INSERT INTO payouts (user_id, amount_tokens, amount_cents, currency, transfer_id) "
        "VALUES (%s, 2000, 2000, 'usd', %s) RETURNING id", (creator.id, tid)).fetchone()[0]
    try:
        assert "payouts_in_transit_mismatch" in _rules(app)
    finally:
        raw.execute("DELETE FROM payouts WHERE id = %s", (payout,))
    assert _rules(app) == set()
