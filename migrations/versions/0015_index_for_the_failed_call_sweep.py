"""index for the failed-call sweep

`app.calls.refunds` looks every billing tick for accepted calls whose media never
connected; this partial index holds just those, by end time, so the sweep reads
a small set instead of every call.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_calls_unconnected_ended_at", "calls", ["ended_at"], unique=False,
                    postgresql_where=sa.text("media_connected_at IS NULL AND accepted_at IS NOT NULL"))


def downgrade():
    op.drop_index("ix_calls_unconnected_ended_at", table_name="calls",
                  postgresql_where=sa.text("media_connected_at IS NULL AND accepted_at IS NOT NULL"))
