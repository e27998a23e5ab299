"""server-side login sessions; API tokens that expire and record their last use

`user_sessions` holds one row per logged-in browser: the session cookie
carries a random secret whose SHA-256 is the row's key, so deleting the row
(logout, password change, "log out everywhere") ends that session on every
web instance at once, even for a copy of the cookie taken earlier.

API tokens get `expires_at` (existing tokens expire 30 days from now, the
default `API_TOKEN_TTL_DAYS`) and `last_used_at`.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("user_agent", sa.String(length=200), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_user_sessions_secret_hash")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"], unique=False)

    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True),
                                          server_default=sa.text("now() + interval '30 days'"), nullable=False))
    op.alter_column("api_tokens", "expires_at", server_default=None)
    op.add_column("api_tokens", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("api_tokens", "last_used_at")
    op.drop_column("api_tokens", "expires_at")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
