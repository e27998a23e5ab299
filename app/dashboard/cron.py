"""The dashboard's periodic job: folding new ledger entries into the rollups,
run by the worker's cron every minute."""
from __future__ import annotations

from app.dashboard import rollups
from app.jobs import job

ROLLUP_SECONDS = 60


@job
def roll_up_ledger() -> dict:
    """Fold new ledger entries into the dashboard rollups (app.dashboard.rollups);
    overlapping runs serialise on a lock and count each entry once."""
    return rollups.run()


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(roll_up_ledger, ROLLUP_SECONDS)]
