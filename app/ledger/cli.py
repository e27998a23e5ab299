"""`flask ledger …` commands."""
import click
from flask.cli import AppGroup

from app.ledger.verify import record_run, verify

ledger_cli = AppGroup("ledger", help="Inspect the token ledger.")


@ledger_cli.command("verify")
def verify_command():
    """Check every ledger invariant; exit 1 if any is violated."""
    violations = verify()
    record_run(violations)  # the platform view shows the last result
    if violations:
        for v in violations:
            click.echo(f"VIOLATION {v}", err=True)
        click.echo(f"ledger verify: {len(violations)} violation(s)", err=True)
        raise SystemExit(1)
    click.echo("ledger verify: ok (transfers balanced, cached balances match, no negative wallets, "
               "issued = purchased)")
