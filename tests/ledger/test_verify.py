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
