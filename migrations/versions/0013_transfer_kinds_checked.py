"""ledger_transfers.kind is one of the transfer kinds

The kinds are one enumeration in the code (`app.ledger.TransferKind`); the
database now refuses any other (a CHECK like ledger_accounts.kind's), so a
typo in a writer fails its transfer instead of hiding it from every reader
that looks kinds up by name. Existing rows are checked first: transfers are
immutable, so an unknown kind already stored can only be made legal, by adding
it to the enumeration and to this list.

The list below is this revision's snapshot of the enumeration; a later kind
comes with its own revision (tests/ledger/test_kinds.py holds the two equal).

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

KINDS = ("purchase", "tip", "ticket", "ticket_refund", "ticket_settlement", "call_block")


def upgrade():
    unknown = op.get_bind().execute(sa.text("SELECT DISTINCT kind FROM ledger_transfers WHERE kind <> ALL(:kinds)"),
                                    {"kinds": list(KINDS)}).scalars().all()
    if unknown:
        raise RuntimeError(f"ledger_transfers holds kinds that are not transfer kinds: {sorted(unknown)}; "
                           "add them to app/ledger/kinds.py and to KINDS here")
    op.create_check_constraint("kind", "ledger_transfers", f"kind IN {KINDS!r}")


def downgrade():
    op.drop_constraint(op.f("ck_ledger_transfers_kind"), "ledger_transfers", type_="check")
