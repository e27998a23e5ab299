"""dashboard rollups, ledger verify runs, operator flag

Daily per-account aggregates of ledger entries (app/dashboard/rollups.py
explains the watermark and each table), a view that names each entry's
counterparty and the stream or call it belongs to, the results of
`flask ledger verify`, and `users.is_operator` for the platform view.
Indexes on calls and streams let the per-call / per-stream revenue lists
read only the most recent rows of one creator, in the order they are shown.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# An entry's counterparty: for a wallet entry, the creator on the other side (the
# owner of the earnings or escrow account in the same transfer); for an earnings
# entry, the fan (the owner of the one wallet in the transfer; none for a show's
# settlement, which pays many fans' tickets at once). NULL otherwise.
# Its reference (ref_type, ref_id): the stream or call the transfer belongs to — a
# show's settlement its stream (metadata streamId, app/streams/tickets.py), a call
# block its call (metadata callId, app/calls/service.py), a tip the stream or call
# it was sent during (its tips row, found by transfer id). NULL otherwise. The
# tips join is on a unique key and is dropped by the planner when ref_* is unused.
ENTRY_FACTS = """
CREATE VIEW dashboard_entry_facts AS
SELECT e.id, e.transfer_id, e.account_id, a.kind AS account_kind, a.user_id AS owner_id,
       t.kind AS transfer_kind, e.amount, e.created_at,
       (e.created_at AT TIME ZONE 'UTC')::date AS day,
       CASE a.kind
         WHEN 'wallet' THEN (SELECT min(a2.user_id) FROM ledger_entries e2
                               JOIN ledger_accounts a2 ON a2.id = e2.account_id
                              WHERE e2.transfer_id = e.transfer_id AND a2.kind IN ('earnings', 'escrow'))
         WHEN 'earnings' THEN (SELECT CASE WHEN count(*) = 1 THEN min(a2.user_id) END FROM ledger_entries e2
                                 JOIN ledger_accounts a2 ON a2.id = e2.account_id
                                WHERE e2.transfer_id = e.transfer_id AND a2.kind = 'wallet')
       END AS counterparty_id,
       CASE WHEN t.kind = 'ticket_settlement' OR tp.stream_id IS NOT NULL THEN 'stream'
            WHEN t.kind = 'call_block' OR tp.call_id IS NOT NULL THEN 'call' END AS ref_type,
       CASE t.kind WHEN 'ticket_settlement' THEN (t.metadata->>'streamId')::bigint
                   WHEN 'call_block' THEN (t.metadata->>'callId')::bigint
                   WHEN 'tip' THEN coalesce(tp.stream_id, tp.call_id) END AS ref_id
  FROM ledger_entries e
  JOIN ledger_accounts a ON a.id = e.account_id
  JOIN ledger_transfers t ON t.id = e.transfer_id
  LEFT JOIN tips tp ON tp.transfer_id = e.transfer_id
"""


def upgrade():
    op.add_column("users", sa.Column("is_operator", sa.Boolean(), server_default=sa.text("false"), nullable=False))

    op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        # Every entry with id <= last_entry_id is in the rollups; none above it is.
        sa.Column("last_entry_id", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        # The UTC day D the moving windows of rollup_pair_window end on; NULL: not built yet.
        sa.Column("window_day", sa.Date(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_rollup_state_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_state")),
    )
    op.execute("INSERT INTO rollup_state (id, last_entry_id) VALUES (1, 0)")

    op.create_table(
        "rollup_daily",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("transfer_kind", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        # The smallest entry id of the group: exports start their index scan there.
        sa.Column("min_entry_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", "transfer_kind", name=op.f("pk_rollup_daily")),
    )
    op.create_table(
        "rollup_daily_pair",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("counterparty_id", sa.BigInteger(), nullable=False),
        sa.Column("transfer_kind", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", "counterparty_id", "transfer_kind",
                                name=op.f("pk_rollup_daily_pair")),
    )
    # The window shift (rollups._shift_windows) reads the days leaving and entering the windows.
    op.create_index("ix_rollup_daily_pair_day", "rollup_daily_pair", ["day"])
    op.create_table(
        "rollup_pair_total",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("counterparty_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "counterparty_id", name=op.f("pk_rollup_pair_total")),
    )
    # Top fans of all time: the first rows of this index, however many fans there are.
    op.create_index("ix_rollup_pair_total_rank", "rollup_pair_total",
                    ["account_id", sa.text("amount DESC"), "counterparty_id"])
    op.create_table(
        "rollup_pair_window",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        # 1, 7 or 30: the days [D - span + 1, D] (D = rollup_state.window_day).
        sa.Column("span", sa.SmallInteger(), nullable=False),
        sa.Column("counterparty_id", sa.BigInteger(), nullable=False),
        # Never 0 once a run commits (a run deletes the rows it brought to 0).
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("span IN (1, 7, 30)", name=op.f("ck_rollup_pair_window_span")),
        sa.PrimaryKeyConstraint("account_id", "span", "counterparty_id", name=op.f("pk_rollup_pair_window")),
    )
    # Top fans of today / 7 / 30 days: the first rows of this index.
    op.create_index("ix_rollup_pair_window_rank", "rollup_pair_window",
                    ["account_id", "span", sa.text("amount DESC"), "counterparty_id"])
    op.create_table(
        "rollup_total",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("transfer_kind", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "transfer_kind", name=op.f("pk_rollup_total")),
    )
    op.create_table(
        "rollup_daily_ref",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("ref_type", sa.String(8), nullable=False),
        sa.Column("ref_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("transfer_kind", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("ref_type IN ('stream', 'call')", name=op.f("ck_rollup_daily_ref_ref_type")),
        sa.PrimaryKeyConstraint("account_id", "ref_type", "ref_id", "day", "transfer_kind",
                                name=op.f("pk_rollup_daily_ref")),
    )
    op.create_table(
        "rollup_kind_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("account_kind", sa.String(32), nullable=False),
        sa.Column("transfer_kind", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "account_kind", "transfer_kind", name=op.f("pk_rollup_kind_daily")),
    )
    op.create_table(
        "ledger_verify_runs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("violations", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_verify_runs")),
    )
    # The view finds a tip's row (stream / call) from its transfer.
    op.create_index("ix_tips_transfer_id", "tips", ["transfer_id"], unique=True)
    op.execute(ENTRY_FACTS)
    # Per-stream / per-call revenue lists show the creator's most recent ones, still
    # running (no end yet: infinity) first, then by end time: an ordered read of the
    # first rows of these, stopping at the range's start — never the whole history.
    op.execute("CREATE INDEX ix_calls_creator_id_recent ON calls "
               "(creator_id, (coalesce(ended_at, 'infinity'::timestamptz)), id)")
    op.execute("CREATE INDEX ix_streams_creator_id_recent ON streams "
               "(creator_id, (coalesce(ended_at, 'infinity'::timestamptz)), id)")


def downgrade():
    op.drop_index("ix_streams_creator_id_recent", table_name="streams")
    op.drop_index("ix_calls_creator_id_recent", table_name="calls")
    op.execute("DROP VIEW dashboard_entry_facts")
    op.drop_index("ix_tips_transfer_id", table_name="tips")
    for table in ("ledger_verify_runs", "rollup_daily_ref", "rollup_total", "rollup_pair_window", "rollup_kind_daily",
                  "rollup_pair_total", "rollup_daily_pair", "rollup_daily", "rollup_state"):
        op.drop_table(table)
    op.drop_column("users", "is_operator")
