"""`flask rollups …`: run or repair the dashboard rollups by hand."""
import click
from flask.cli import AppGroup

from app.dashboard import rollups

rollups_cli = AppGroup("rollups", help="Dashboard rollups of the ledger entries.")


@rollups_cli.command("run")
def run_command():
    """Roll new ledger entries into the daily rollups (what the worker does every minute)."""
    result = rollups.run()
    click.echo(f"rollups: {result['rolled']} entries rolled up, watermark {result['watermark']}"
               + (" (deferred: a long transaction is still writing)" if result["deferred"] else ""))


@rollups_cli.command("rebuild")
def rebuild_command():
    """Recount every rollup from the ledger entries (repair). Dashboards stay exact meanwhile."""
    result = rollups.rebuild()
    click.echo(f"rollups rebuilt: {result['rolled']} entries, watermark {result['watermark']}"
               + (" (deferred: run `flask rollups run` again)" if result["deferred"] else ""))
