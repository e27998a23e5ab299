"""The dashboard's periodic job: folding new ledger entries into the rollups,
run by the worker's cron every ROLLUP_SECONDS. Often, so that the entries the
dashboards read live stay few even while tips pour in (a run that finds nothing
new is a few cheap statements); a dashboard that still finds many catches up
itself (`rollups.catch_up`)."""
from __future__ import annotations

from app.dashboard import rollups
from app.jobs import job

ROLLUP_SECONDS = 10


@job
def roll_up_ledger() -> dict:
    """Fold new ledger entries into the dashboard rollups (app.dashboard.rollups);
    overlapping runs serialise on a lock and count each entry once."""
    return rollups.run()


def schedule() -> list:
    """(job, interval in seconds) for the worker's CronScheduler."""
    return [(roll_up_ledger, ROLLUP_SECONDS)]
