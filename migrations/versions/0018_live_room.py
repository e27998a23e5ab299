"""the live room: chat, tip goals, tip menu, alert controls, fan spending cap (DESIGN.md §12)

* chat_messages: a stream's chat. `deleted_at`/`deleted_by`: removed by the
  stream's creator (kept for the record, shown to no one).
* chat_bans: a creator bans a user from chat in all of their rooms, until
  `expires_at` (None: until unbanned). Tipping stays allowed.
* stream_goals: a stream's tip goal. Progress is the gross tokens tipped to
  the stream by tips with `id > after_tip_id` (the tips made after the goal was
  set); it is read from the tips, never kept as a counter. One current goal per
  stream (`replaced_at IS NULL`); `reached_at` is set once, by whoever announces it.
* tip_menu_items: a creator's tip menu. An edit keeps an item's id while its
  label stays, so a tip for it at the old price is told `price_changed`;
  removed items keep their row (`removed_at`) for the tips that name them.
* tips.menu_item_id / menu_label: what a menu tip bought (the label as it was).
* tips.message_status: with approval mode on, whether the OBS source may show
  the tip's message ('pending' until the creator approves or hides it).
* users.alert_min_tokens / profanity_filter / require_approval / alert_sound:
  the creator's alert controls; users.daily_spend_limit_tokens: a fan's own cap
  on tokens spent per UTC day (None: no cap).

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("alert_min_tokens", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("users", sa.Column("profanity_filter", sa.Boolean(), server_default=sa.text("false"),
                                     nullable=False))
    op.add_column("users", sa.Column("require_approval", sa.Boolean(), server_default=sa.text("false"),
                                     nullable=False))
    op.add_column("users", sa.Column("alert_sound", sa.String(20), nullable=True))
    op.add_column("users", sa.Column("daily_spend_limit_tokens", sa.BigInteger(), nullable=True))
    op.create_check_constraint("ck_users_alert_min_tokens", "users", "alert_min_tokens >= 0")
    op.create_check_constraint("ck_users_alert_sound_form", "users", "alert_sound ~ '^[a-z0-9-]{1,20}$'")
    op.create_check_constraint("ck_users_daily_spend_limit_positive", "users", "daily_spend_limit_tokens > 0")

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("stream_id", sa.BigInteger(), sa.ForeignKey("streams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.CheckConstraint("char_length(text) BETWEEN 1 AND 500", name="ck_chat_messages_text_length"),
    )
    op.create_index("ix_chat_messages_stream_id_id", "chat_messages", ["stream_id", "id"])

    op.create_table(
        "chat_bans",
        sa.Column("creator_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("creator_id <> user_id", name="ck_chat_bans_not_self"),
    )

    op.create_table(
        "stream_goals",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("stream_id", sa.BigInteger(), sa.ForeignKey("streams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(80), nullable=False),
        sa.Column("target_tokens", sa.BigInteger(), nullable=False),
        sa.Column("after_tip_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("reached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("char_length(title) BETWEEN 1 AND 80", name="ck_stream_goals_title_length"),
        sa.CheckConstraint("target_tokens > 0", name="ck_stream_goals_target_positive"),
    )
    op.create_index("uq_stream_goals_current", "stream_goals", ["stream_id"], unique=True,
                    postgresql_where=sa.text("replaced_at IS NULL"))

    op.create_table(
        "tip_menu_items",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("creator_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(60), nullable=False),
        sa.Column("price_tokens", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("char_length(label) BETWEEN 1 AND 60", name="ck_tip_menu_items_label_length"),
        sa.CheckConstraint("price_tokens > 0", name="ck_tip_menu_items_price_positive"),
        sa.CheckConstraint("position BETWEEN 0 AND 29", name="ck_tip_menu_items_position"),
    )
    # At most 30 listed items per creator, one per position; labels unique on the menu.
    op.create_index("uq_tip_menu_items_position", "tip_menu_items", ["creator_id", "position"], unique=True,
                    postgresql_where=sa.text("removed_at IS NULL"))
    op.create_index("uq_tip_menu_items_label", "tip_menu_items", ["creator_id", "label"], unique=True,
                    postgresql_where=sa.text("removed_at IS NULL"))

    op.add_column("tips", sa.Column("menu_item_id", sa.BigInteger(), sa.ForeignKey("tip_menu_items.id"),
                                    nullable=True))
    op.add_column("tips", sa.Column("menu_label", sa.String(60), nullable=True))
    op.add_column("tips", sa.Column("message_status", sa.String(10), nullable=True))
    op.create_check_constraint("ck_tips_message_status", "tips",
                               "message_status IN ('pending', 'approved', 'hidden')")
    op.create_check_constraint("ck_tips_menu_item_labelled", "tips",
                               "(menu_item_id IS NULL) = (menu_label IS NULL)")


def downgrade():
    op.drop_constraint("ck_tips_menu_item_labelled", "tips")
    op.drop_constraint("ck_tips_message_status", "tips")
    op.drop_column("tips", "message_status")
    op.drop_column("tips", "menu_label")
    op.drop_column("tips", "menu_item_id")
    op.drop_index("uq_tip_menu_items_label", table_name="tip_menu_items")
    op.drop_index("uq_tip_menu_items_position", table_name="tip_menu_items")
    op.drop_table("tip_menu_items")
    op.drop_index("uq_stream_goals_current", table_name="stream_goals")
    op.drop_table("stream_goals")
    op.drop_table("chat_bans")
    op.drop_index("ix_chat_messages_stream_id_id", table_name="chat_messages")
    op.drop_table("chat_messages")
    for name in ("ck_users_daily_spend_limit_positive", "ck_users_alert_sound_form", "ck_users_alert_min_tokens"):
        op.drop_constraint(name, "users")
    for column in ("daily_spend_limit_tokens", "alert_sound", "require_approval", "profanity_filter",
                   "alert_min_tokens"):
        op.drop_column("users", column)
