"""`flask seed demo`: the demo creator and fan printed by `make run`."""
import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from app.auth.models import User
from app.auth.service import register
from app.extensions import db

DEMO_USERS = (
    ("creator@example.com", "demo-creator-pass", "Demo Creator", "creator"),
    ("fan@example.com", "demo-fan-pass", "Demo Fan", "fan"),
)

seed_cli = AppGroup("seed", help="Demo data.")


def seed_demo() -> list[tuple[str, str, str]]:
    """Create the demo users if missing (idempotent); returns (role, email, password)."""
    out = []
    for email, password, name, role in DEMO_USERS:
        if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is None:
            register(email, password, name, role)
        out.append((role, email, password))
    return out


@seed_cli.command("demo")
def seed_demo_command():
    for role, email, password in seed_demo():
        click.echo(f"  {role:<8} {email}  password: {password}")
