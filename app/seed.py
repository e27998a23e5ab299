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
    # A fan account with the operator flag: sees the platform view (/dashboard/platform).
    ("operator@example.com", "demo-operator-pass", "Demo Operator", "operator"),
)

seed_cli = AppGroup("seed", help="Demo data.")


def seed_demo() -> list[tuple[str, str, str]]:
    """Create the demo users if missing (idempotent); returns (role, email, password)."""
    out = []
    for email, password, name, role in DEMO_USERS:
        if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is None:
            user = register(email, password, name, "fan" if role == "operator" else role)
            if role == "operator":
                user.is_operator = True
                db.session.commit()
        out.append((role, email, password))
    return out


@seed_cli.command("demo")
def seed_demo_command():
    for role, email, password in seed_demo():
        click.echo(f"  {role:<8} {email}  password: {password}")
