"""ledger_post checks before it writes; one open call per fan

`ledger_post` (0002) inserted the transfer row before finding a shortfall, so
a refused transfer left an entry-less row behind and the caller had to roll
back its whole transaction. The call meter needs to refuse one block (the
fan ran dry, the call ends) and go on with the rest of its batch in the same
transaction. Now a refused transfer writes nothing:

1. every cached leg's account (and a debited derived account other than
   `token_sales`) is locked in account-id order — the same fixed order as
   before, so no deadlock cycles;
2. a transfer with this key already committed → `created = false` (looked up
   *after* the locks: a concurrent post of the same key that held them has
   committed by now, so a retry is a replay, not a second debit);
3. each debit is checked (`balance + amount >= 0`; a derived account's
   entries summed); any shortfall → return it, nothing written (only row
   locks held until the caller's transaction ends);
4. insert the transfer (a concurrent transfer with the same key that
   committed meanwhile → `created = false`, nothing written);
5. apply the cached balances (they can't fail now: locked and checked) and
   insert the entries with their running balances.

Also a partial unique index: a fan has at most one open call (requested,
active or paused), which concurrent requests can't get around.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
    CREATE OR REPLACE FUNCTION ledger_post(p_kind text, p_key text, p_meta jsonb, p_accounts bigint[],
                                           p_amounts bigint[],
                                           OUT o_transfer_id bigint, OUT o_created boolean, OUT o_shortfall bigint,
                                           OUT o_balances bigint[])
    LANGUAGE plpgsql AS $$
    DECLARE
        leg record;
        current_balance bigint;
    BEGIN
        -- Lock first, then look for the key: a concurrent post of the same key that
        -- holds these rows commits before we get them, and then we see it (a replay
        -- must answer "already done", not "insufficient funds" for the second try).
        PERFORM 1 FROM ledger_accounts a
          JOIN unnest(p_accounts, p_amounts) AS x(account_id, amount) ON a.id = x.account_id
         WHERE a.cached OR (x.amount < 0 AND a.kind <> 'token_sales')
         ORDER BY a.id
           FOR UPDATE OF a;
        SELECT id INTO o_transfer_id FROM ledger_transfers WHERE idempotency_key = p_key;
        IF FOUND THEN
            o_created := false;
            RETURN;
        END IF;
        o_balances := array_fill(NULL::bigint, ARRAY[cardinality(p_accounts)]);
        FOR leg IN
            SELECT x.ord, x.account_id, x.amount, a.cached, a.kind, a.balance
              FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS x(account_id, amount, ord)
              JOIN ledger_accounts a ON a.id = x.account_id
             WHERE a.cached OR (x.amount < 0 AND a.kind <> 'token_sales')
             ORDER BY x.account_id
        LOOP
            IF leg.cached THEN
                IF leg.balance + leg.amount < 0 THEN
                    o_shortfall := -(leg.balance + leg.amount);
                    RETURN;
                END IF;
                o_balances[leg.ord] := leg.balance + leg.amount;
            ELSE
                SELECT coalesce(sum(amount), 0) INTO current_balance
                  FROM ledger_entries WHERE account_id = leg.account_id;
                IF current_balance + leg.amount < 0 THEN
                    o_shortfall := -(current_balance + leg.amount);
                    RETURN;
                END IF;
            END IF;
        END LOOP;
        INSERT INTO ledger_transfers (kind, idempotency_key, metadata) VALUES (p_kind, p_key, p_meta)
            ON CONFLICT (idempotency_key) DO NOTHING RETURNING id INTO o_transfer_id;
        IF o_transfer_id IS NULL THEN
            SELECT id INTO o_transfer_id FROM ledger_transfers WHERE idempotency_key = p_key;
            o_created := false;
            o_balances := NULL;
            RETURN;
        END IF;
        o_created := true;
        UPDATE ledger_accounts a SET balance = a.balance + x.amount
          FROM unnest(p_accounts, p_amounts) AS x(account_id, amount)
         WHERE a.id = x.account_id AND a.cached;
        INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
        SELECT o_transfer_id, x.a, x.m, x.b FROM unnest(p_accounts, p_amounts, o_balances) AS x(a, m, b);
    END $$
    """)
    op.execute("CREATE UNIQUE INDEX uq_calls_one_open_per_fan ON calls (fan_id) "
               "WHERE status IN ('requested', 'active', 'paused')")


def downgrade():
    import importlib.util
    from pathlib import Path

    op.execute("DROP INDEX uq_calls_one_open_per_fan")
    # Put 0002's ledger_post back by running that migration's own CREATE again.
    spec = importlib.util.spec_from_file_location(
        "ledger_post_0002", Path(__file__).with_name("0002_ledger_post_function.py"))
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute("DROP FUNCTION ledger_post(text, text, jsonb, bigint[], bigint[])")
    previous.upgrade()
