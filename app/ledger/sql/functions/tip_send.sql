-- tip_send(): a tip's writes in one statement: claim the idempotency key
-- (idempotency_claim), post the legs app.ledger built through ledger_post as
-- `tip:<id>`, insert the tip row. Status: created, replayed (the first tip's
-- id, time, transfer and the sender's balance after it), conflict, or
-- insufficient_funds (with the shortfall); the caller rolls back on the last two.
CREATE OR REPLACE FUNCTION public.tip_send(p_sender bigint, p_creator bigint, p_key text, p_fingerprint text,
                         p_amount bigint, p_creator_share bigint, p_platform_share bigint, p_message text,
                         p_stream_id bigint, p_call_id bigint, p_channel text,
                         p_meta jsonb, p_accounts bigint[], p_amounts bigint[], p_wallet bigint,
                         OUT o_status text, OUT o_tip_id bigint, OUT o_created_at timestamptz,
                         OUT o_transfer_id bigint, OUT o_balance bigint, OUT o_shortfall bigint)
    RETURNS record LANGUAGE plpgsql AS $$
DECLARE
    claimed record;
    posted record;
    wallet_index int := array_position(p_accounts, p_wallet);
BEGIN
    claimed := idempotency_claim(p_sender, p_key, 'tips.send', p_fingerprint, 'tips_id_seq');
    o_tip_id := claimed.o_resource_id;
    IF claimed.o_conflict THEN
        o_status := 'conflict';
        RETURN;
    END IF;
    IF NOT claimed.o_fresh THEN
        o_status := 'replayed';
        SELECT t.created_at, t.transfer_id, e.balance_after INTO o_created_at, o_transfer_id, o_balance
          FROM tips t JOIN ledger_entries e ON e.transfer_id = t.transfer_id AND e.account_id = p_wallet
         WHERE t.id = o_tip_id;
        RETURN;
    END IF;
    posted := ledger_post('tip', 'tip:' || o_tip_id, p_meta || jsonb_build_object('tipId', o_tip_id),
                          p_accounts, p_amounts);
    IF posted.o_shortfall > 0 THEN
        o_status := 'insufficient_funds';
        o_shortfall := posted.o_shortfall;
        RETURN;
    END IF;
    o_status := 'created';
    o_transfer_id := posted.o_transfer_id;
    o_balance := posted.o_balances[wallet_index];
    INSERT INTO tips (id, sender_id, creator_id, amount, creator_share, platform_share, message,
                      stream_id, call_id, channel, transfer_id)
         VALUES (o_tip_id, p_sender, p_creator, p_amount, p_creator_share, p_platform_share, p_message,
                 p_stream_id, p_call_id, p_channel, o_transfer_id)
    RETURNING created_at INTO o_created_at;
END $$;
