"""The demo seed (`flask seed demo`, run by `make run` at every start): on a
database of its own, since it makes fixed accounts and a live stream."""
import uuid
from datetime import timedelta

import psycopg
import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app import clock
from app.auth.models import User
from app.extensions import db
from app.seed import (DEMO_CALL_RATE, DEMO_FAN_TOKENS, DEMO_SHOW_TICKET_PRICE, DEMO_USERS, seed_demo,
                      try_it_lines)
from app.streams import service as streams, tickets
from app.streams.models import Stream
from app.wallet import service as wallet
from app.wallet.models import Purchase
from tests.clock import Clock, install_clock
from tests.conftest import _libpq


@pytest.fixture()
def seed_app(app, services, make_app):
    """An app on a brand-new migrated database, in an app context; dropped afterwards."""
    db_url, redis_url = services
    name = f"pm_seed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    seeded = make_app((make_url(db_url).set(database=name).render_as_string(hide_password=False), redis_url))
    with seeded.app_context():
        upgrade()
        yield seeded
        db.session.remove()
        db.engine.dispose()
    with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _user(index):
    return db.session.scalar(select(User).where(func.lower(User.email) == DEMO_USERS[index][0]))


def _streams(creator):
    return db.session.scalars(select(Stream).where(Stream.creator_id == creator.id).order_by(Stream.id)).all()


def test_a_first_seed_makes_everything_a_newcomer_can_try_at_once(seed_app):
    """A live public stream, a private show an hour ahead with a ticket price, the
    creator's bio and open calls at a rate, and a demo fan holding 5,000 tokens bought
    through the wallet (a completed purchase, not a balance written by hand)."""
    demo = seed_demo()
    creator, fan = _user(0), _user(1)
    assert creator.bio.strip()
    assert (creator.call_rate_tokens_per_min, creator.calls_enabled) == (DEMO_CALL_RATE, True)
    live, show = _streams(creator)
    assert (live.id, live.type, live.status) == (demo.stream_id, "public", "live")
    assert (show.id, show.type, show.status, show.ticket_price) == (demo.show_id, "private", "scheduled",
                                                                     DEMO_SHOW_TICKET_PRICE)
    assert timedelta(minutes=55) < show.starts_at - clock.now() <= timedelta(hours=1)
    assert wallet.wallet_balance(fan) == DEMO_FAN_TOKENS == demo.fan_tokens
    purchases = db.session.scalars(select(Purchase).where(Purchase.user_id == fan.id)).all()
    assert [(p.amount_tokens, p.status) for p in purchases] == [(DEMO_FAN_TOKENS, "completed")]


def test_seeding_again_adds_nothing_and_never_tops_the_fan_up_again(seed_app):
    """`make run` seeds at every start: the second and third runs make no stream, no
    purchase, and leave a fan who spent tokens with what they have left."""
    first = seed_demo()
    fan = _user(1)
    tickets.checkout(fan, db.session.get(Stream, first.show_id))  # the fan spends some
    spent_balance = wallet.wallet_balance(fan)
    assert spent_balance == DEMO_FAN_TOKENS - DEMO_SHOW_TICKET_PRICE
    again = seed_demo()
    seed_demo()
    assert (again.stream_id, again.show_id) == (first.stream_id, first.show_id)
    assert len(_streams(_user(0))) == 2
    assert db.session.scalar(select(func.count()).select_from(Purchase)) == 1
    assert wallet.wallet_balance(fan) == spent_balance == again.fan_tokens


def test_a_show_that_went_live_or_whose_time_passed_is_replaced_by_a_new_one(seed_app):
    """There is always an upcoming show to buy a ticket for: once the seeded one went
    live, or its start time passed, the next seed schedules another an hour ahead."""
    time = Clock()
    install_clock(seed_app, time)
    first = seed_demo()
    streams.change_status(_user(0), first.show_id, "start")
    second = seed_demo()
    assert second.show_id != first.show_id
    time.advance(hours=2)
    third = seed_demo()
    assert third.show_id not in (first.show_id, second.show_id)
    assert db.session.get(Stream, third.show_id).starts_at > time.now


def test_changes_made_in_the_app_survive_a_new_seed(seed_app):
    """The seed fills blanks only: a creator who closed calls or rewrote their bio keeps that."""
    seed_demo()
    creator = _user(0)
    creator.bio, creator.calls_enabled = "My own words", False
    db.session.commit()
    seed_demo()
    db.session.refresh(creator)
    assert (creator.bio, creator.calls_enabled) == ("My own words", False)


def test_without_the_demo_provider_the_banner_promises_no_tokens():
    """With real payments (Stripe) the seed buys nothing (`fan_tokens` None) and the
    banner must not claim the fan holds tokens."""
    from app.seed import Demo
    lines = "\n".join(try_it_lines(Demo([], 1, 2, 100, None), "http://x"))
    assert "demo tokens" not in lines
    assert "http://x/streams/1" in lines and "http://x/streams/2" in lines


def test_the_banner_lines_name_the_fan_the_tokens_and_each_page_to_open(seed_app):
    demo = seed_demo()
    text = "\n".join(try_it_lines(demo, "http://127.0.0.1:5000"))
    assert DEMO_USERS[1][0] in text and "5,000 demo tokens" in text
    assert f"http://127.0.0.1:5000/streams/{demo.stream_id}" in text
    assert f"http://127.0.0.1:5000/streams/{demo.show_id}" in text and "ticket" in text
    assert "video-call" in text


def test_the_live_stream_has_a_room_to_try_a_goal_a_tip_menu_and_a_welcome(seed_app):
    """The newcomer's stream is a room at once: a goal to fill, a menu to tip from and the
    creator's welcome in the chat; seeding again adds none of them twice, and a menu the
    creator edited stays theirs."""
    from app.chat.models import ChatMessage
    from app.goals.models import StreamGoal
    from app.goals.service import current_goal
    from app.seed import DEMO_GOAL, DEMO_TIP_MENU
    from app.tipmenu.service import listed_items, replace_menu

    demo = seed_demo()
    goal = current_goal(demo.stream_id)
    assert (goal.goal.title, goal.goal.target_tokens, goal.progress) == (*DEMO_GOAL, 0)
    creator = _user(0)
    assert [(i.label, i.price_tokens) for i in listed_items(creator.id)] == [
        (item["label"], item["priceTokens"]) for item in DEMO_TIP_MENU]
    welcome = db.session.scalars(select(ChatMessage).where(ChatMessage.stream_id == demo.stream_id)).all()
    assert [m.user_id for m in welcome] == [creator.id]

    replace_menu(creator, [{"label": "Only this", "priceTokens": 7}])
    seed_demo()
    assert [(i.label, i.price_tokens) for i in listed_items(creator.id)] == [("Only this", 7)]
    assert db.session.scalar(select(func.count()).select_from(StreamGoal)) == 1
    assert db.session.scalar(select(func.count()).select_from(ChatMessage)) == 1
