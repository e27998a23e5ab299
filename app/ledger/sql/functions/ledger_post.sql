-- ledger_post(): one transfer in one statement, in the caller's transaction
-- (`app.ledger.transfer`). A refused transfer writes nothing, so the caller may
-- go on (the call meter ends one call and bills the rest of its batch):
--
-- 1. every cached leg's account (and a debited derived account other than
--    `token_sales`) is locked in account-id order, a fixed order, so no
--    deadlock cycles;
-- 2. a transfer with this key already committed -> `o_created = false` (looked
--    up *after* the locks: a concurrent post of the same key that held them has
--    committed by now, so a retry is a replay, not a second debit);
-- 3. each debit is checked (`balance + amount >= 0`; a derived account's
--    entries summed; a user's `debt` may go below zero, its CHECK keeps it from
--    going above); any shortfall -> `o_shortfall`, nothing written (only row
--    locks held until the caller's transaction ends);
-- 4. insert the transfer (a concurrent transfer with the same key that
--    committed meanwhile -> `o_created = false`, nothing written);
-- 5. apply the cached balances (they can't fail now: locked and checked) and
--    insert the entries with their running balances; `o_balances[i]` is leg
--    i's account balance after the transfer (NULL for derived accounts).
CREATE OR REPLACE FUNCTION public.ledger_post(p_kind text, p_key text, p_meta jsonb, p_accounts bigint[],
                                              p_amounts bigint[],
                                              OUT o_transfer_id bigint, OUT o_created boolean,
                                              OUT o_shortfall bigint, OUT o_balances bigint[])
    RETURNS record LANGUAGE plpgsql AS $$
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
            IF leg.balance + leg.amount < 0 AND leg.kind <> 'debt' THEN
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
END $$;
