"""The billing rules as pure functions (app/calls/billing.py, DESIGN.md §5 Calls).

Price of block k = ceil((k+1)·rate·B/60) − ceil(k·rate·B/60). The prices of
blocks 0..m−1 telescope to ceil(m·rate·B/60), so:

* when 60 is a multiple of B, n minutes are exactly n·60/B blocks and cost
  exactly n × rate;
* for any other B, whole minutes need not be whole blocks: the m = ceil(60n/B)
  blocks that cover n minutes cost ceil(m·rate·B/60), which is at least n × rate
  and at most n × rate + ceil(rate·B/60) (one block more than the time, at most),
  and equal to n × rate whenever 60n is a multiple of B.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.calls.billing import active_ms_at, block_price, block_start_ms, blocks_due

DIVIDES_60 = (1, 15, 30, 60)
OTHER_B = (7, 45)
RATES = st.integers(min_value=1, max_value=100_000)
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def total(m: int, rate: int, b: int) -> int:
    return sum(block_price(k, rate, b) for k in range(m))


# ---- examples ------------------------------------------------------------------------


def test_rate_60_costs_30_per_30_second_block():
    assert [block_price(k, 60, 30) for k in range(6)] == [30] * 6


def test_rate_25_alternates_13_and_12():
    assert [block_price(k, 25, 30) for k in range(8)] == [13, 12, 13, 12, 13, 12, 13, 12]
    assert total(2, 25, 30) == 25 and total(20, 25, 30) == 250


def test_rate_1_charges_the_first_half_minute_and_not_the_second():
    assert [block_price(k, 1, 30) for k in range(4)] == [1, 0, 1, 0]


def test_odd_block_lengths_round_up_within_the_minute():
    # B = 45 s, rate 4: 3 tokens per block on average; block 0 ends at 0:45 → 3.
    assert [block_price(k, 4, 45) for k in range(4)] == [3, 3, 3, 3]
    # B = 7 s, rate 60: 7 tokens per block, exactly.
    assert [block_price(k, 60, 7) for k in range(3)] == [7, 7, 7]
    # B = 7 s, rate 10: 7/6 per block → 2, 1, 1, 1, 1, 1 (7 tokens for 42 s), then 2 …
    assert [block_price(k, 10, 7) for k in range(7)] == [2, 1, 1, 1, 1, 1, 2]
    assert total(6, 10, 7) == 7  # 42 s at 10/min = 7 tokens


def test_block_starts():
    assert [block_start_ms(k, 30) for k in range(4)] == [0, 30_000, 60_000, 90_000]
    assert block_start_ms(5, 7) == 35_000


# ---- properties ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(rate=RATES, b=st.sampled_from(DIVIDES_60), n=st.integers(min_value=0, max_value=600))
def test_n_minutes_cost_exactly_n_times_the_rate_when_b_divides_60(rate, b, n):
    assert total(n * 60 // b, rate, b) == n * rate


@settings(max_examples=300, deadline=None)
@given(rate=RATES, b=st.sampled_from(DIVIDES_60 + OTHER_B), m=st.integers(min_value=0, max_value=2_000))
def test_the_first_m_blocks_cost_ceil_m_rate_b_over_60(rate, b, m):
    assert total(m, rate, b) == math.ceil(m * rate * b / 60) == -(-(m * rate * b) // 60)


@settings(max_examples=300, deadline=None)
@given(rate=RATES, b=st.sampled_from(OTHER_B), n=st.integers(min_value=0, max_value=600))
def test_blocks_covering_n_minutes_when_b_does_not_divide_60(rate, b, n):
    m = -(-60 * n // b)  # blocks needed to cover n minutes
    cost = total(m, rate, b)
    assert n * rate <= cost <= n * rate + -(-(rate * b) // 60)
    if (60 * n) % b == 0:
        assert cost == n * rate


@settings(max_examples=500, deadline=None)
@given(rate=RATES, b=st.sampled_from(DIVIDES_60 + OTHER_B), k=st.integers(min_value=0, max_value=10**6))
def test_a_block_price_is_never_negative_and_is_the_fair_share_rounded(rate, b, k):
    price = block_price(k, rate, b)
    assert price >= 0
    assert (rate * b) // 60 <= price <= -(-(rate * b) // 60)


# ---- blocks_due / active_ms_at --------------------------------------------------------------


@pytest.mark.parametrize("b", [1, 7, 30, 45, 60])
def test_block_k_is_due_exactly_at_k_times_b(b):
    assert blocks_due(0, b) == 1  # block 0 at the start
    for k in (1, 2, 3, 10, 1000):
        edge = k * b * 1000
        assert blocks_due(edge - 1, b) == k  # one millisecond before: blocks 0..k−1
        assert blocks_due(edge, b) == k + 1  # exactly k·B: block k is due
        assert blocks_due(edge + 1, b) == k + 1
        assert blocks_due(block_start_ms(k, b), b) == k + 1


@settings(max_examples=300, deadline=None)
@given(b=st.sampled_from((1, 7, 15, 30, 45, 60)), ms=st.integers(min_value=0, max_value=10**10))
def test_blocks_due_counts_the_blocks_that_have_started(b, ms):
    due = blocks_due(ms, b)
    assert block_start_ms(due - 1, b) <= ms < block_start_ms(due, b)


def test_active_ms_at_while_paused_is_the_banked_time():
    assert active_ms_at(12_345, None, T0) == 12_345
    assert active_ms_at(12_345, None, T0 + timedelta(hours=5)) == 12_345


def test_active_ms_at_adds_the_running_segment():
    assert active_ms_at(10_000, T0, T0) == 10_000  # at the start of the segment
    assert active_ms_at(10_000, T0, T0 - timedelta(seconds=5)) == 10_000  # never counts backwards
    assert active_ms_at(10_000, T0, T0 + timedelta(milliseconds=1)) == 10_001
    assert active_ms_at(10_000, T0, T0 + timedelta(seconds=20)) == 30_000
    assert active_ms_at(0, T0, T0 + timedelta(minutes=10)) == 600_000
    # Sub-millisecond time is truncated, never rounded up into the next block.
    assert active_ms_at(0, T0, T0 + timedelta(microseconds=999)) == 0
    assert active_ms_at(0, T0, T0 + timedelta(seconds=29, microseconds=999_999)) == 29_999


def test_boundaries_through_both_functions():
    # Accepted at T0 with 10 s banked: block 1 (at 30 s of active time) is due at T0+20 s, not before.
    assert blocks_due(active_ms_at(10_000, T0, T0 + timedelta(seconds=20) - timedelta(microseconds=1)), 30) == 1
    assert blocks_due(active_ms_at(10_000, T0, T0 + timedelta(seconds=20)), 30) == 2
    assert blocks_due(active_ms_at(10_000, T0, T0 + timedelta(seconds=50)), 30) == 3
