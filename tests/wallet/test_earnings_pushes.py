"""A creator's nav pill shows their earnings, kept live over /ws/me (issue 17): every way
tokens reach their earnings queues a refresh after commit, and the job publishes the new
figure to their user channel. At most one refresh is queued per creator at a time, so a
tip storm costs one figure, not one per tip."""
from __future__ import annotations

import re
import uuid
from contextlib import contextmanager

import pytest

from app.calls import service as calls
from app.realtime.bus import user_channel
from app.streams import service as streams
from app.streams import tickets
from app.tips import service as tips
from tests.calls.helpers import earnings
from tests.helpers import published

_PUSH = re.compile(r'<span id="nav-earnings" hx-swap-oob="true">([\d,]+)</span>')


@pytest.fixture()
def pushed_earnings(ctx, run_jobs):
    """pushed_earnings(creator_id): a context collecting the earnings figures published to the
    creator's channel while the block runs and when the jobs it queued have run (as the worker would)."""
    @contextmanager
    def _watch(creator_id: int):
        figures: list[str] = []
        with published(user_channel(creator_id), run_jobs) as messages:
            yield figures
        figures += [figure for html in messages for figure in _PUSH.findall(html)]
    return _watch


def test_a_tip_pushes_the_creators_new_earnings(ctx, make_fan, make_creator, pushed_earnings, run_jobs):
    creator, fan = make_creator(), make_fan(balance=5_000)
    tips.send_tip(fan, creator.id, 1_000, "", None, str(uuid.uuid4()))
    run_jobs()
    with pushed_earnings(creator.id) as figures:
        tips.send_tip(fan, creator.id, 2_500, "", None, str(uuid.uuid4()), confirmed=True)
    assert figures == ["2,800"]  # 800 + 2,000


def test_a_private_show_settling_pushes_the_creators_earnings(ctx, make_fan, make_creator, make_stream,
                                                              pushed_earnings):
    creator = make_creator()
    stream = make_stream(creator, type_="private", ticket_price=1_500, live=True)
    for _ in range(2):
        tickets.checkout(make_fan(balance=2_000), stream)
    with pushed_earnings(creator.id) as figures:
        streams.change_status(creator, stream.id, "end")
    assert figures == ["2,400"]


def test_a_show_with_nothing_to_settle_pushes_no_earnings(ctx, make_creator, make_stream, pushed_earnings):
    creator = make_creator()
    stream = make_stream(creator, type_="private", ticket_price=1_500, live=True)
    with pushed_earnings(creator.id) as figures:
        streams.change_status(creator, stream.id, "end")
    assert figures == []


@pytest.mark.usefixtures("no_open_calls")
def test_each_call_block_pushes_the_creators_earnings(ctx, clock, make_call, make_creator, pushed_earnings,
                                                      run_jobs):
    creator = make_creator()
    with pushed_earnings(creator.id) as figures:
        make_call(rate=25, balance=1_000, creator=creator)  # accepting charges block 0: 13, creator 10
        run_jobs()
        clock.advance(30)
        assert calls.meter().blocks_charged == 1  # block 1: 12, creator 9
    assert figures == ["10", "19"]
    assert earnings(creator.id) == 19


def test_a_tip_storm_queues_one_refresh_per_creator_with_every_tip_in_its_figure(
        ctx, make_fan, make_creator, pushed_earnings, queue):
    """Tips arriving while a refresh is queued add none: the one job reads after them all."""
    creator, other = make_creator(), make_creator()
    fans = [make_fan(balance=1_000) for _ in range(3)]
    with pushed_earnings(creator.id) as figures:
        for fan in fans:
            for amount in (10, 20, 30):
                tips.send_tip(fan, creator.id, amount, "", None, str(uuid.uuid4()))
        tips.send_tip(fans[0], other.id, 50, "", None, str(uuid.uuid4()))
        assert [job.args for job in queue.jobs] == [([creator.id],), ([other.id],)]
    assert figures == [f"{3 * (8 + 16 + 24):,}"]


def test_a_change_after_the_refresh_read_queues_the_next_one(ctx, make_fan, make_creator, pushed_earnings,
                                                             run_jobs, queue):
    """The job drops its claim before it reads: the next tip queues a new refresh."""
    creator, fan = make_creator(), make_fan(balance=1_000)
    with pushed_earnings(creator.id) as figures:
        tips.send_tip(fan, creator.id, 100, "", None, str(uuid.uuid4()))
        run_jobs()
        tips.send_tip(fan, creator.id, 100, "", None, str(uuid.uuid4()))
        assert len(queue.jobs) == 1
    assert figures == ["80", "160"]


def test_the_earnings_figure_is_the_earnings_balance_before_and_after_a_rollup(ctx, make_fan, make_creator):
    """The nav reads rollups + the newest entries (cost independent of history): the same
    figure as the ledger's sum of entries, whether or not the worker rolled them up."""
    from app import ledger
    from app.dashboard import rollups
    from app.wallet.service import earnings_figure

    creator, fan = make_creator(), make_fan(balance=5_000)
    assert earnings_figure(creator.id) == 0
    tips.send_tip(fan, creator.id, 1_000, "", None, str(uuid.uuid4()))
    account = ledger.account_for(creator.id, "earnings")
    assert earnings_figure(creator.id) == ledger.balance_of(account) == 800
    rollups.run(wait_seconds=0)
    tips.send_tip(fan, creator.id, 500, "", None, str(uuid.uuid4()))
    assert earnings_figure(creator.id) == ledger.balance_of(account) == 1_200
    assert earnings_figure(fan.id) == 0  # no earnings account
