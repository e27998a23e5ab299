"""The billing rules of a call, as pure functions of its timeline (DESIGN.md §5 Calls).

* Active time is billed in blocks of B seconds (`BILLING_BLOCK_SECONDS`, 30 by
  default, fixed per call when it is requested). Block k (0-based) is charged
  when the call's active time reaches k·B — at its *start* — so block 0 is
  charged at acceptance.
* Price of block k: ``ceil((k+1)·rate·B/60) − ceil(k·rate·B/60)``, so n minutes
  cost exactly n × rate (rate 25, B 30 → 13, 12, 13, 12, …).
* Paused time is not active time, so a paid block's unused seconds carry over:
  after a resume the clock continues inside the paid block and the next charge
  comes only when active time reaches the next block's start.

Nothing here reads the clock or the database: callers pass the moment.
"""
from __future__ import annotations

from datetime import datetime, timedelta

MS = timedelta(milliseconds=1)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def block_price(k: int, rate: int, block_seconds: int) -> int:
    """Tokens for block k of a call at `rate` tokens per minute."""
    return _ceil_div((k + 1) * rate * block_seconds, 60) - _ceil_div(k * rate * block_seconds, 60)


def active_ms_at(active_ms: int, active_since: datetime | None, at: datetime) -> int:
    """Active milliseconds at `at`: the banked time, plus the running segment if the clock runs."""
    if active_since is None or at <= active_since:
        return active_ms
    return active_ms + (at - active_since) // MS


def blocks_due(active_ms: int, block_seconds: int) -> int:
    """How many blocks have started after `active_ms` of active time (block 0 starts at 0)."""
    return active_ms // (block_seconds * 1000) + 1


def block_start_ms(k: int, block_seconds: int) -> int:
    return k * block_seconds * 1000
