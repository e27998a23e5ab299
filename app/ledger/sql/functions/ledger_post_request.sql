-- ledger_post_request(): a transfer made once per client request, in one
-- statement (`app.ledger.transfer_for_request`; a tip). In the caller's transaction:
--
-- 1. claim the request's idempotency key (idempotency_claim), reserving the id
--    of the row the request creates from `p_id_sequence` (a tip's id);
-- 2. key used with other parameters -> 'conflict', nothing written;
-- 3. key already used by this request -> 'replayed': the first request's row id,
--    its transfer and the balances right after it (per leg, as ledger_post
--    gives them), nothing written;
-- 4. else post the legs with ledger_post as the transfer `<kind>:<row id>`,
--    its metadata naming the row (`<kind>Id`, e.g. tip:42 and tipId) ->
--    'posted', or 'insufficient_funds' with the shortfall (nothing posted).
--
-- On 'conflict' and 'insufficient_funds' the caller must roll back, which also
-- releases the claim: a refused request leaves nothing behind.
CREATE OR REPLACE FUNCTION public.ledger_post_request(p_user bigint, p_request_key text, p_scope text,
                                                      p_fingerprint text, p_id_sequence regclass,
                                                      p_kind text, p_meta jsonb, p_accounts bigint[],
                                                      p_amounts bigint[],
                                                      OUT o_status text, OUT o_resource_id bigint,
                                                      OUT o_transfer_id bigint, OUT o_balances bigint[],
                                                      OUT o_shortfall bigint)
    RETURNS record LANGUAGE plpgsql AS $$
DECLARE
    claimed record;
    posted record;
BEGIN
    claimed := idempotency_claim(p_user, p_request_key, p_scope, p_fingerprint, p_id_sequence);
    o_resource_id := claimed.o_resource_id;
    IF claimed.o_conflict THEN
        o_status := 'conflict';
        RETURN;
    END IF;
    IF NOT claimed.o_fresh THEN
        o_status := 'replayed';
        SELECT t.id, array_agg(e.balance_after ORDER BY x.ord) INTO o_transfer_id, o_balances
          FROM ledger_transfers t
         CROSS JOIN unnest(p_accounts) WITH ORDINALITY AS x(account_id, ord)
          LEFT JOIN ledger_entries e ON e.transfer_id = t.id AND e.account_id = x.account_id
         WHERE t.idempotency_key = p_kind || ':' || o_resource_id
         GROUP BY t.id;
        RETURN;
    END IF;
    posted := ledger_post(p_kind, p_kind || ':' || o_resource_id,
                          p_meta || jsonb_build_object(p_kind || 'Id', o_resource_id), p_accounts, p_amounts);
    IF posted.o_shortfall > 0 THEN
        o_status := 'insufficient_funds';
        o_shortfall := posted.o_shortfall;
        RETURN;
    END IF;
    IF NOT posted.o_created THEN
        -- The id is fresh from its sequence: a transfer already holding its key is damage, not a replay.
        RAISE EXCEPTION 'ledger_post_request: transfer %:% exists but its request was never claimed',
            p_kind, o_resource_id USING ERRCODE = 'unique_violation';
    END IF;
    o_status := 'posted';
    o_transfer_id := posted.o_transfer_id;
    o_balances := posted.o_balances;
END $$;
