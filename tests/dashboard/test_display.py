"""The per-day bar chart's geometry (app/dashboard/display.py): pure functions, no database."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.dashboard import display
from app.dashboard.ranges import DayTotals


def days(*totals, start=date(2026, 1, 30)):
    """DayTotals for consecutive days; each item is (tips, tickets, calls)."""
    return [DayTotals(start + timedelta(days=i), *t) for i, t in enumerate(totals)]


@pytest.mark.parametrize("value,expected", [(0, 4), (1, 4), (4, 4), (5, 8), (9, 12), (100, 100), (101, 120),
                                            (999, 1000), (1001, 1200), (12_345, 16_000), (1_000_000, 1_000_000)])
def test_axis_maximum_is_a_round_number_at_or_above_the_peak_in_four_whole_steps(value, expected):
    top = display.nice_ceiling(value)
    assert top == expected and top >= value and top % 4 == 0


@pytest.mark.parametrize("value,label", [(0, "0"), (7_500, "7,500"), (10_000, "10k"), (45_000, "45k"),
                                         (750_000, "750k"), (1_500_000, "1.5M"), (75_000_000, "75M"),
                                         (2_000_000_000, "2B")])
def test_y_axis_labels_are_short_from_ten_thousand_on(value, label):
    assert display.axis_label(value) == label


def test_every_axis_label_fits_five_characters_and_reads_back_exactly():
    # The axis is 12% of the chart's width: ~36 px on a phone, where "45,000" spilled out.
    scale = {"k": 10 ** 3, "M": 10 ** 6, "B": 10 ** 9}
    for peak in [int(m * 10 ** e) for e in range(0, 11) for m in (1, 1.2, 1.5, 2.2, 3.3, 4.4, 5.5, 7.7, 9.9)]:
        chart = display.bar_chart(days((peak, 0, 0)))
        for tick in chart.y_ticks:
            label = display.axis_label(tick.value)
            assert len(label) <= 5, (peak, tick.value, label)
            if tick.value >= 10_000:
                assert round(float(label[:-1]) * scale[label[-1]]) == tick.value, (tick.value, label)


def test_bars_stack_tips_tickets_calls_from_the_baseline_with_heights_in_proportion():
    chart = display.bar_chart(days((30, 0, 10), (0, 0, 0), (50, 20, 10)))
    assert [b.total for b in chart.bars] == [40, 0, 80]
    assert chart.y_ticks[-1].value == 80 and chart.y_ticks[0].value == 0
    plot_h = chart.bottom - chart.top
    full = chart.bars[2]
    assert [s.source for s in full.segments] == ["tips", "tickets", "calls"]
    assert full.segments[0].y + full.segments[0].height == pytest.approx(chart.bottom)  # tips sit on the axis
    for lower, upper in zip(full.segments, full.segments[1:]):
        assert upper.y + upper.height == pytest.approx(lower.y, abs=0.02)  # no gap, no overlap
    assert sum(s.height for s in full.segments) == pytest.approx(plot_h, abs=0.05)  # the peak reaches the top
    assert chart.bars[0].segments[0].height == pytest.approx(plot_h * 30 / 80, abs=0.01)
    assert [s.source for s in chart.bars[0].segments] == ["tips", "calls"]  # zero parts are left out
    assert chart.bars[1].segments == ()
    assert chart.peak is full and chart.total == 120 and not chart.empty


def test_bars_are_ordered_left_to_right_inside_the_plot():
    chart = display.bar_chart(days(*[(i, 0, 0) for i in range(30)]))
    xs = [b.x for b in chart.bars]
    assert xs == sorted(xs) and xs[0] >= chart.left and xs[-1] + chart.bars[-1].width <= chart.right + 0.01


def test_an_all_zero_range_is_empty_with_axes_and_no_peak():
    chart = display.bar_chart(days((0, 0, 0), (0, 0, 0)))
    assert chart.empty and chart.peak is None and chart.total == 0
    assert [t.value for t in chart.y_ticks] == [0, 1, 2, 3, 4]
    assert display.bar_chart([]).bars == ()


def test_at_most_eight_day_labels_and_the_newest_day_is_always_labelled():
    for n in (1, 7, 30, 366):
        chart = display.bar_chart(days(*[(1, 0, 0)] * n))
        assert 1 <= len(chart.x_labels) <= display.MAX_X_LABELS
        assert chart.x_labels[-1].text == display.day_label(chart.last_day, with_weekday=n == 1)


def test_a_year_of_days_still_gets_a_visible_bar_each():
    """Coordinates are percentages of the chart's width: every bar at least MIN_BAR wide, none overlapping."""
    chart = display.bar_chart(days(*[(1, 0, 0)] * 366))
    assert all(b.width >= display.MIN_BAR for b in chart.bars)
    assert all(a.x + a.width <= b.x for a, b in zip(chart.bars, chart.bars[1:]))


@pytest.mark.parametrize("n", [2, 7, 30, 366])
def test_the_newest_day_label_ends_at_the_plot_edge_so_it_is_never_cut_off(n):
    chart = display.bar_chart(days(*[(1, 0, 0)] * n))
    newest = chart.x_labels[-1]
    assert (newest.anchor, newest.x, newest.minor) == ("end", chart.right, False)
    assert all(label.anchor == "middle" and chart.left <= label.x < chart.right for label in chart.x_labels[:-1])


def test_every_other_label_back_from_the_newest_is_minor_for_narrow_screens():
    chart = display.bar_chart(days(*[(1, 0, 0)] * 30))
    assert [label.minor for label in chart.x_labels][::-1] == [i % 2 == 1 for i in range(len(chart.x_labels))]


def test_a_single_day_label_is_centred_under_its_bar():
    (label,) = display.bar_chart(days((5, 0, 0))).x_labels
    assert label.anchor == "middle" and label.x == pytest.approx((display.MARGIN_LEFT + 100 - display.MARGIN_RIGHT) / 2)


def test_day_labels_are_english_whatever_the_locale():
    assert display.day_label(date(2026, 6, 1)) == "1 Jun"
    assert display.day_label(date(2026, 6, 1), with_weekday=True) == "Mon 1 Jun"


def test_a_day_below_zero_in_one_source_draws_its_other_parts_inside_the_plot():
    """Refunds of blocks earned on an earlier day make a day's calls negative: the bar
    stacks the positive parts, the axis covers them, and a day below zero draws nothing."""
    chart = display.bar_chart(days((100, 0, -24), (0, 0, -30)))
    assert [b.total for b in chart.bars] == [76, -30]
    assert chart.y_ticks[-1].value >= 100
    mixed, negative = chart.bars
    assert [s.source for s in mixed.segments] == ["tips"]
    assert mixed.segments[0].y >= chart.top and all(s.height > 0 for s in mixed.segments)
    assert negative.segments == ()
    assert chart.peak is mixed
