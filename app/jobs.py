"""Background jobs run by `worker.py`. Jobs take ids, are enqueued after the
commit that makes them necessary, and are harmless when run twice.

`CRON_JOBS` lists (function, interval_seconds) pairs for RQ's CronScheduler;
features add theirs as they land (metering, refunds, rollups).
"""
CRON_JOBS: list = []
