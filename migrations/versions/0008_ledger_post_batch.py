"""ledger_post_batch(): many transfers in one set-based statement; entries
checked per statement

The call meter posts one transfer per running call per tick: 10,000 calls are
10,000 transfers. `ledger_post` (0007) does them one call at a time, each
half a dozen statements inside PL/pgSQL; measured (bench/metering.py) that
per-transfer cost, not the work itself, was most of a tick. This function
applies the same rules to a whole batch with a handful of set-based
statements, in the caller's transaction:

1. contract (else an exception, nothing written): keys distinct, every leg
   of a known account, no derived account debited (escrow debits stay with
   `ledger_post`, which sums the entries), each cached account (wallet) in at
   most one transfer of the batch — so each transfer's debit check is
   independent of the others';
2. lock the batch's cached accounts in id order (the same fixed order as
   `ledger_post`, so no deadlock cycles between the two);
3. one statement, run after the locks (so a concurrent post of the same key
   has committed and is seen): a transfer whose key exists is a replay
   (`created = false`); one whose debit would take a wallet below zero is
   refused with its shortfall; the rest are inserted (a same-key transfer
   committed meanwhile by a post holding no common lock makes the insert a
   no-op: `created = false` and no id), balances applied, entries inserted.

Outputs are per transfer (ids, created, shortfalls) and per leg (the cached
account's balance after the transfer, else NULL). Metadata comes as one JSON
array (one document to parse, not one per transfer).

And fillfactor on `calls` and `ledger_accounts`, so the counters and balances
the meter updates each tick are updated in place (HOT).

Also: the sum-to-zero rule for entries is checked once per INSERT statement
(a statement-level trigger over the inserted rows) instead of once per entry
row at COMMIT, which cost ~9 µs per entry — a third of the bulk-SQL
baseline. The rule is stricter, not looser: every statement that inserts
entries must leave each transfer it touches balanced, with at least two
entries (all of this codebase's posts insert a transfer's entries in one
statement). A transfer with no entries at all is still refused at COMMIT by
the deferred per-transfer trigger.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


ENTRIES_BALANCED = """
    CREATE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE bad record;
    BEGIN
        SELECT e.transfer_id, count(*) AS n, sum(e.amount) AS total INTO bad
          FROM ledger_entries e
         WHERE e.transfer_id IN (SELECT DISTINCT transfer_id FROM inserted_entries)
         GROUP BY e.transfer_id
        HAVING sum(e.amount) <> 0 OR count(*) < 2
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'ledger transfer % is unbalanced: % entries summing to %', bad.transfer_id, bad.n,
                bad.total USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
"""

POST_BATCH = """
    CREATE FUNCTION ledger_post_batch(p_kinds text[], p_keys text[], p_metas jsonb, p_leg_of int[],
                                      p_accounts bigint[], p_amounts bigint[],
                                      OUT o_transfer_ids bigint[], OUT o_created boolean[],
                                      OUT o_shortfalls bigint[], OUT o_balances bigint[])
    LANGUAGE plpgsql AS $$
    DECLARE
        known boolean;
        no_derived_debit boolean;
        wallets_once boolean;
    BEGIN
        IF cardinality(p_kinds) <> cardinality(p_keys) OR jsonb_array_length(p_metas) <> cardinality(p_keys)
           OR cardinality(p_leg_of) <> cardinality(p_accounts) OR cardinality(p_amounts) <> cardinality(p_accounts) THEN
            RAISE EXCEPTION 'ledger_post_batch: array lengths differ' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (SELECT count(DISTINCT k) FROM unnest(p_keys) k) <> cardinality(p_keys) THEN
            RAISE EXCEPTION 'ledger_post_batch: keys must be distinct' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- One pass over the legs for the rest of the contract.
        SELECT count(acc.id) = cardinality(p_accounts),
               coalesce(bool_and(acc.cached OR x.m > 0 OR acc.kind = 'token_sales'), true),
               count(DISTINCT x.a) FILTER (WHERE acc.cached) = count(*) FILTER (WHERE acc.cached)
          INTO known, no_derived_debit, wallets_once
          FROM unnest(p_accounts, p_amounts) AS x(a, m) LEFT JOIN ledger_accounts acc ON acc.id = x.a;
        IF NOT known THEN
            RAISE EXCEPTION 'ledger_post_batch: unknown account' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT no_derived_debit OR NOT wallets_once THEN
            RAISE EXCEPTION 'ledger_post_batch: a derived account is debited or a wallet appears twice'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        PERFORM 1 FROM ledger_accounts a WHERE a.id = ANY(p_accounts) AND a.cached ORDER BY a.id FOR UPDATE;

        WITH t AS (
            SELECT u.ord::int AS ord, u.kind, u.key, p_metas -> (u.ord::int - 1) AS meta
              FROM unnest(p_kinds, p_keys) WITH ORDINALITY AS u(kind, key, ord)),
        legs AS (
            SELECT l.ord::int AS leg, l.t AS tord, l.a, l.m, acc.cached, acc.balance
              FROM unnest(p_leg_of, p_accounts, p_amounts) WITH ORDINALITY AS l(t, a, m, ord)
              JOIN ledger_accounts acc ON acc.id = l.a),
        replayed AS (
            SELECT t.ord, lt.id FROM t JOIN ledger_transfers lt ON lt.idempotency_key = t.key),
        short AS (
            SELECT tord, max(-(balance + m)) AS shortfall FROM legs
             WHERE cached AND balance + m < 0 GROUP BY tord),
        fresh AS (
            INSERT INTO ledger_transfers (kind, idempotency_key, metadata)
            SELECT t.kind, t.key, t.meta FROM t
             WHERE t.ord NOT IN (SELECT ord FROM replayed) AND t.ord NOT IN (SELECT tord FROM short)
             ORDER BY t.ord
                ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id, idempotency_key),
        posted AS (
            SELECT t.ord, f.id FROM fresh f JOIN t ON t.key = f.idempotency_key),
        moved AS (
            UPDATE ledger_accounts a SET balance = a.balance + l.m
              FROM legs l JOIN posted p ON p.ord = l.tord
             WHERE a.id = l.a AND l.cached
            RETURNING a.id, a.balance),
        entries AS (
            INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
            SELECT p.id, l.a, l.m, mv.balance
              FROM legs l JOIN posted p ON p.ord = l.tord LEFT JOIN moved mv ON mv.id = l.a
             ORDER BY l.leg)
        SELECT (SELECT array_agg(coalesce(p.id, r.id) ORDER BY t.ord)
                  FROM t LEFT JOIN posted p ON p.ord = t.ord LEFT JOIN replayed r ON r.ord = t.ord),
               (SELECT array_agg(p.id IS NOT NULL ORDER BY t.ord) FROM t LEFT JOIN posted p ON p.ord = t.ord),
               (SELECT array_agg(CASE WHEN r.id IS NULL THEN s.shortfall END ORDER BY t.ord)
                  FROM t LEFT JOIN replayed r ON r.ord = t.ord LEFT JOIN short s ON s.tord = t.ord),
               (SELECT array_agg(mv.balance ORDER BY l.leg)
                  FROM legs l LEFT JOIN posted p ON p.ord = l.tord LEFT JOIN moved mv ON mv.id = l.a AND p.id IS NOT NULL)
          INTO o_transfer_ids, o_created, o_shortfalls, o_balances;
    END $$
"""


def upgrade():
    # Room in each page for a row's next version: the meter updates every running
    # call's counters and every fan's wallet each tick, and with free space those
    # updates are HOT (no index entries to add for the unchanged indexed columns).
    op.execute("ALTER TABLE calls SET (fillfactor = 70)")
    op.execute("ALTER TABLE ledger_accounts SET (fillfactor = 80)")
    op.execute("DROP TRIGGER ledger_entries_balanced ON ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_balanced()")
    op.execute(ENTRIES_BALANCED)
    op.execute("CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
               "REFERENCING NEW TABLE AS inserted_entries "
               "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_balanced()")
    op.execute(POST_BATCH)


def downgrade():
    op.execute("ALTER TABLE calls RESET (fillfactor)")
    op.execute("ALTER TABLE ledger_accounts RESET (fillfactor)")
    op.execute("DROP FUNCTION ledger_post_batch(text[], text[], jsonb, int[], bigint[], bigint[])")
    op.execute("DROP TRIGGER ledger_entries_balanced ON ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_balanced()")
    # 0001's per-row check at COMMIT.
    op.execute("""
    CREATE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM ledger_assert_balanced(NEW.transfer_id); RETURN NULL; END $$
    """)
    op.execute("CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entries_balanced()")
