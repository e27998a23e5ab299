"""`flask push keys`: a new VAPID key pair for operators, in the form the app reads."""
import click
from flask.cli import AppGroup

from app.push import keys

push_cli = AppGroup("push", help="Web Push notifications.")


@push_cli.command("keys")
def keys_command():
    """Print a new VAPID key pair as environment lines (VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY).
    Changing the pair in production ends every existing subscription: browsers must subscribe again."""
    private, public = keys.generate_pair()
    click.echo(f"VAPID_PRIVATE_KEY={private}")
    click.echo(f"VAPID_PUBLIC_KEY={public}")
