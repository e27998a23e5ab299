"""`flask seed demo`: everything a newcomer needs to try the app at once, made by
`make run` before it prints the banner (idempotent: every start runs it).

- the demo creator, fan and operator (passwords printed by `make run`);
- the demo creator's bio, call rate with calls open, a live public stream
  (what `make run` prints the OBS settings for) and a scheduled private show
  with a ticket price, an hour ahead;
- the live stream's room: a tip goal, the creator's tip menu and a welcome
  line in the chat (each only where there is none yet: changes made in the
  app stay);
- the demo fan's tokens, bought once through the wallet (a purchase with a
  fixed idempotency key: re-running the seed replays it and adds nothing,
  even after the fan spent them). Only with the demo payment provider: with
  Stripe the fan buys their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from app import clock
from app.auth.models import User
from app.auth.service import register
from app.extensions import db

DEMO_USERS = (
    ("creator@example.com", "demo-creator-pass", "Demo Creator", "creator"),
    ("fan@example.com", "demo-fan-pass", "Demo Fan", "fan"),
    # A fan account with the operator flag: sees the platform view (/dashboard/platform).
    ("operator@example.com", "demo-operator-pass", "Demo Operator", "operator"),
)
DEMO_STREAM_TITLE = "Demo Creator's live room"
DEMO_SHOW_TITLE = "Demo Creator's private show"
DEMO_SHOW_TICKET_PRICE = 100
DEMO_SHOW_STARTS_IN = timedelta(hours=1)
DEMO_CALL_RATE = 30  # tokens a minute
DEMO_BIO = ("Hi, I'm the demo creator. Drop a tip on my live stream, grab a ticket to my private show "
            "or video-call me: it's all demo tokens.")
DEMO_GOAL = ("Acoustic encore", 2_000)
DEMO_TIP_MENU = ({"label": "Say hi", "priceTokens": 20}, {"label": "Song request", "priceTokens": 100},
                 {"label": "Dance", "priceTokens": 250}, {"label": "Shout-out on stream", "priceTokens": 500})
DEMO_WELCOME = "Welcome to the room! Pick something from my tip menu, or help us reach the goal."
DEMO_FAN_TOKENS = 5_000
# The demo fan's one purchase: the same key every run, so it is bought once.
DEMO_FAN_PURCHASE_KEY = "demo-seed-fan-tokens"

seed_cli = AppGroup("seed", help="Demo data.")


@dataclass(frozen=True)
class Demo:
    """What the seed made: the accounts as (role, email, password), and the ids and
    figures the banner names."""
    accounts: list[tuple[str, str, str]]
    stream_id: int | None
    show_id: int | None
    show_ticket_price: int
    fan_tokens: int | None  # the demo fan's balance; None when not funded (not the demo provider)


def _demo_user(index: int) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == DEMO_USERS[index][0]))


def demo_stream():
    """The demo creator's live public stream, created (and started) if they have no
    open stream yet; None if the demo creator does not exist."""
    from app.streams import service as streams
    from app.streams.models import Stream

    creator = _demo_user(0)
    if creator is None:
        return None
    stream = db.session.scalar(select(Stream).where(Stream.creator_id == creator.id, Stream.type == "public",
                                                    Stream.status.in_(("live", "scheduled")))
                               .order_by(Stream.status, Stream.id))  # "live" sorts before "scheduled"
    if stream is None:
        stream = streams.create_stream(creator, "public", DEMO_STREAM_TITLE, None, None)
    if stream.status == "scheduled":
        streams.change_status(creator, stream.id, "start")
        db.session.refresh(stream)
    return stream


def demo_show(creator: User):
    """The demo creator's scheduled private show that has not started yet; a new one
    an hour from now when there is none (the last one went live, ended, or its time
    passed: the show sweep cancels those as no-shows)."""
    from app.streams import service as streams
    from app.streams.models import Stream

    show = db.session.scalar(select(Stream).where(Stream.creator_id == creator.id, Stream.type == "private",
                                                  Stream.status == "scheduled", Stream.starts_at > clock.now())
                             .order_by(Stream.starts_at, Stream.id))
    if show is None:
        starts_at = (clock.now() + DEMO_SHOW_STARTS_IN).replace(microsecond=0)
        show = streams.create_stream(creator, "private", DEMO_SHOW_TITLE, DEMO_SHOW_TICKET_PRICE,
                                     starts_at.isoformat())
    return show


def _set_up_creator(creator: User) -> None:
    """Bio and call rate, only where the creator has none yet (changes made in the app stay)."""
    from app.calls import service as calls

    if not creator.bio:
        creator.bio = DEMO_BIO
        db.session.commit()
    if not creator.call_rate_tokens_per_min:
        calls.update_settings(creator, DEMO_CALL_RATE, True)


def _set_up_room(creator: User, stream) -> None:
    """A goal on the live stream, a tip menu and the creator's welcome in the chat, each only
    while there is none (a goal the creator cleared comes back at the next start: it is a demo)."""
    from app.chat.models import ChatMessage
    from app.chat.service import post_message
    from app.goals.service import current_goal, set_goal
    from app.tipmenu.service import listed_items, replace_menu

    if current_goal(stream.id) is None:
        set_goal(creator, stream.id, *DEMO_GOAL)
    if not listed_items(creator.id):
        replace_menu(creator, list(DEMO_TIP_MENU))
    if db.session.scalar(select(ChatMessage.id).where(ChatMessage.stream_id == stream.id).limit(1)) is None:
        post_message(creator, stream.id, DEMO_WELCOME)


def _fund_fan(fan: User) -> int | None:
    """The demo fan's balance after their one demo purchase of DEMO_FAN_TOKENS; None
    (nothing bought) unless payments are the demo provider's."""
    from app.payments.providers import provider
    from app.wallet import service as wallet

    if provider().name != "demo":
        return None
    wallet.purchase_tokens(fan, DEMO_FAN_TOKENS, DEMO_FAN_PURCHASE_KEY)
    return wallet.wallet_balance(fan)


def seed_demo() -> Demo:
    """Create whatever of the demo is missing (idempotent; see the module docstring)."""
    accounts = []
    for email, password, name, role in DEMO_USERS:
        if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is None:
            user = register(email, password, name, "fan" if role == "operator" else role)
            if role == "operator":
                user.is_operator = True
                db.session.commit()
        accounts.append((role, email, password))
    creator, fan = _demo_user(0), _demo_user(1)
    _set_up_creator(creator)
    stream = demo_stream()
    _set_up_room(creator, stream)
    show = demo_show(creator)
    return Demo(accounts, stream.id, show.id, show.ticket_price, _fund_fan(fan))


def try_it_lines(demo: Demo, origin: str) -> list[str]:
    """What the banner says can be tried right away, with the addresses to open."""
    tokens = f" ({demo.fan_tokens:,} demo tokens)" if demo.fan_tokens is not None else ""
    return [f"  try it now, logged in as {DEMO_USERS[1][0]}{tokens}:",
            f"    tip or video-call Demo Creator on the live stream  {origin}/streams/{demo.stream_id}",
            "    (chat, tip from the tip menu and fill the goal bar there)",
            f"    buy a ticket ({demo.show_ticket_price:,} tokens) to the private show   "
            f"{origin}/streams/{demo.show_id}",
            f"  and as {DEMO_USERS[0][0]}, the creator's side:       {origin}/dashboard"]


@seed_cli.command("demo")
def seed_demo_command():
    demo = seed_demo()
    for role, email, password in demo.accounts:
        click.echo(f"  {role:<8} {email}  password: {password}")
    for line in try_it_lines(demo, ""):
        click.echo(line)
