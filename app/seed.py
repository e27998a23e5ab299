"""`flask seed demo`: the demo creator and fan printed by `make run`, and the
demo creator's live public stream (what `make run` prints the OBS settings for)."""
import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from app.auth.models import User
from app.auth.service import register
from app.extensions import db

DEMO_USERS = (
    ("creator@example.com", "demo-creator-pass", "Demo Creator", "creator"),
    ("fan@example.com", "demo-fan-pass", "Demo Fan", "fan"),
    # A fan account with the operator flag: sees the platform view (/dashboard/platform).
    ("operator@example.com", "demo-operator-pass", "Demo Operator", "operator"),
)

seed_cli = AppGroup("seed", help="Demo data.")


DEMO_STREAM_TITLE = "Demo Creator's live room"


def demo_stream():
    """The demo creator's live public stream, created (and started) if they have no
    open stream yet; None if the demo creator does not exist."""
    from app.streams import service as streams
    from app.streams.models import Stream

    creator = db.session.scalar(select(User).where(func.lower(User.email) == DEMO_USERS[0][0]))
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


def seed_demo() -> list[tuple[str, str, str]]:
    """Create the demo users and the demo stream if missing (idempotent); returns
    (role, email, password) of each user."""
    out = []
    for email, password, name, role in DEMO_USERS:
        if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is None:
            user = register(email, password, name, "fan" if role == "operator" else role)
            if role == "operator":
                user.is_operator = True
                db.session.commit()
        out.append((role, email, password))
    demo_stream()
    return out


@seed_cli.command("demo")
def seed_demo_command():
    for role, email, password in seed_demo():
        click.echo(f"  {role:<8} {email}  password: {password}")
