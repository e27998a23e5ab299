"""a stream's broadcast: whether the creator's encoder is connected to the media server

The media server tells the app when a publisher starts and stops
(`app.streams.media`); the player uses it to tell "the creator is offline"
from "waiting for the stream". Not money, not access: only what viewers see.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("streams", sa.Column("broadcasting_since", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("streams", "broadcasting_since")
