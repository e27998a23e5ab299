"""ledger_post(): one statement per transfer

`app.ledger.transfer` used to send four statements per transfer; measured
(bench/ledger.py) the Python cost per statement, not the database, capped
throughput at ~0.45x raw SQL. This function does the same steps inside
PostgreSQL, in the caller's transaction:

1. insert the transfer, or return the existing one (`created = false`) when
   its idempotency key was already used;
2. in account-id order (a fixed lock order, so no deadlock cycles):
   cached accounts (wallets) get the conditional
   `UPDATE … SET balance = balance + m WHERE … AND balance + m >= 0`;
   a debit of a derived account other than `token_sales` locks the account row
   and checks the sum of its entries; credits to derived (hot) accounts touch
   no shared row;
3. insert the entries, with the running balance of cached accounts.

On a shortfall it returns `shortfall > 0` and inserts no entries; the caller
must roll back (the entry-less transfer row would fail the deferred
sum-to-zero trigger at COMMIT anyway).

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
    CREATE FUNCTION ledger_post(p_kind text, p_key text, p_meta jsonb, p_accounts bigint[], p_amounts bigint[],
                                OUT o_transfer_id bigint, OUT o_created boolean, OUT o_shortfall bigint,
                                OUT o_balances bigint[])
    LANGUAGE plpgsql AS $$
    DECLARE
        leg record;
        new_balance bigint;
        current_balance bigint;
    BEGIN
        INSERT INTO ledger_transfers (kind, idempotency_key, metadata) VALUES (p_kind, p_key, p_meta)
            ON CONFLICT (idempotency_key) DO NOTHING RETURNING id INTO o_transfer_id;
        IF o_transfer_id IS NULL THEN
            SELECT id INTO o_transfer_id FROM ledger_transfers WHERE idempotency_key = p_key;
            o_created := false;
            RETURN;
        END IF;
        o_created := true;
        o_balances := array_fill(NULL::bigint, ARRAY[cardinality(p_accounts)]);
        FOR leg IN
            SELECT x.ord, x.account_id, x.amount, a.cached, a.kind
              FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS x(account_id, amount, ord)
              JOIN ledger_accounts a ON a.id = x.account_id
             ORDER BY x.account_id
        LOOP
            IF leg.cached THEN
                UPDATE ledger_accounts SET balance = balance + leg.amount
                 WHERE id = leg.account_id AND balance + leg.amount >= 0
                RETURNING balance INTO new_balance;
                IF NOT FOUND THEN
                    SELECT balance INTO current_balance FROM ledger_accounts WHERE id = leg.account_id;
                    o_shortfall := -(current_balance + leg.amount);
                    RETURN;
                END IF;
                o_balances[leg.ord] := new_balance;
            ELSIF leg.amount < 0 AND leg.kind <> 'token_sales' THEN
                PERFORM 1 FROM ledger_accounts WHERE id = leg.account_id FOR UPDATE;
                SELECT coalesce(sum(amount), 0) INTO current_balance
                  FROM ledger_entries WHERE account_id = leg.account_id;
                IF current_balance + leg.amount < 0 THEN
                    o_shortfall := -(current_balance + leg.amount);
                    RETURN;
                END IF;
            END IF;
        END LOOP;
        INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after)
        SELECT o_transfer_id, x.a, x.m, x.b FROM unnest(p_accounts, p_amounts, o_balances) AS x(a, m, b);
    END $$
    """)


def downgrade():
    op.execute("DROP FUNCTION ledger_post(text, text, jsonb, bigint[], bigint[])")
