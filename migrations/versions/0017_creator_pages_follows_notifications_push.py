"""creator pages, follows, notifications and Web Push subscriptions (DESIGN.md §13)

* users.handle: the creator page's address `/c/<handle>`, 3–30 of [a-z0-9_],
  unique. Every creator gets one from their display name plus their id (below for
  existing creators, app.profiles.service for new ones) and may change it later.
  Fans have none.
* users.bio, users.avatar_version (None: no avatar; bumped on every upload, so
  the image URL changes and caches never show an old face); avatars hold the
  re-encoded WebP itself, out of the users row.
* follows: who follows which creator.
* notifications: a user's in-app notifications. `dedupe_key` is unique per user,
  so a fan-out job run twice still leaves each follower exactly one.
* push_subscriptions: a browser's Web Push endpoint and keys, with the topics
  its owner turned on for that device.

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Existing creators get a handle from their display name; the id makes it unique (no one
# has picked a handle yet). New creators get one the same way from app.profiles.service.
BACKFILL_HANDLES = r"""
UPDATE users SET handle = CASE
        WHEN length(regexp_replace(lower(display_name), '[^a-z0-9_]+', '', 'g')) >= 3
        THEN left(regexp_replace(lower(display_name), '[^a-z0-9_]+', '', 'g'), 12)
        ELSE 'creator' END || '_' || id
 WHERE role = 'creator'
"""


def upgrade():
    op.add_column("users", sa.Column("handle", sa.String(30), nullable=True))
    op.add_column("users", sa.Column("bio", sa.String(500), server_default="", nullable=False))
    op.add_column("users", sa.Column("avatar_version", sa.Integer(), nullable=True))
    op.create_index("uq_users_handle", "users", ["handle"], unique=True)
    op.create_check_constraint("ck_users_handle_form", "users", "handle ~ '^[a-z0-9_]{3,30}$'")
    op.execute(BACKFILL_HANDLES)

    op.create_table(
        "avatars",
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("webp", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )

    op.create_table(
        "follows",
        sa.Column("follower_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("creator_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("follower_id <> creator_id", name="ck_follows_not_self"),
    )
    op.create_index("ix_follows_creator_id_follower_id", "follows", ["creator_id", "follower_id"], unique=True)

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("text", sa.String(300), nullable=False),
        sa.Column("url", sa.String(300), nullable=False),
        sa.Column("dedupe_key", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_notifications_user_id_id", "notifications", ["user_id", "id"])
    op.create_index("uq_notifications_user_id_dedupe_key", "notifications", ["user_id", "dedupe_key"], unique=True)
    op.create_index("ix_notifications_unread", "notifications", ["user_id"],
                    postgresql_where=sa.text("read_at IS NULL"))

    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("endpoint", sa.String(1000), nullable=False, unique=True),
        sa.Column("p256dh", sa.String(200), nullable=False),
        sa.Column("auth", sa.String(100), nullable=False),
        sa.Column("topics", postgresql.ARRAY(sa.String(16)), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_push_subscriptions_user_id", "push_subscriptions", ["user_id"])


def downgrade():
    op.drop_table("push_subscriptions")
    op.drop_table("notifications")
    op.drop_table("follows")
    op.drop_table("avatars")
    op.drop_constraint("ck_users_handle_form", "users")
    op.drop_index("uq_users_handle", table_name="users")
    op.drop_column("users", "avatar_version")
    op.drop_column("users", "bio")
    op.drop_column("users", "handle")
