-- The request idempotency rule (`app.idempotency`): claim the key, reserving the
-- id of the row the request will create from `p_sequence`; or, when the key
-- exists (a concurrent first use blocks on the unique index until it ends),
-- report the first request's id (`o_fresh = false`), or `o_conflict` when it
-- was used with other parameters (another fingerprint). The claim is
-- uncommitted: rolling back the request releases it.
CREATE OR REPLACE FUNCTION public.idempotency_claim(p_user bigint, p_key text, p_scope text, p_fingerprint text,
                                                    p_sequence regclass,
                                                    OUT o_fresh boolean, OUT o_resource_id bigint,
                                                    OUT o_conflict boolean)
    RETURNS record LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO idempotency_keys (user_id, key, scope, fingerprint, resource_id)
         VALUES (p_user, p_key, p_scope, p_fingerprint, nextval(p_sequence))
    ON CONFLICT (user_id, key) DO NOTHING
    RETURNING resource_id INTO o_resource_id;
    IF FOUND THEN
        o_fresh := true;
        o_conflict := false;
        RETURN;
    END IF;
    o_fresh := false;
    SELECT resource_id, fingerprint <> p_fingerprint INTO o_resource_id, o_conflict
      FROM idempotency_keys WHERE user_id = p_user AND key = p_key;
END $$;
