-- A transfer's entries sum to zero and number at least two; raised with SQLSTATE
-- check_violation so drivers report an IntegrityError. Used by the deferred
-- per-transfer check (trigger ledger_transfers_balanced) at COMMIT.
CREATE OR REPLACE FUNCTION public.ledger_assert_balanced(tid bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE total numeric; n integer;
BEGIN
    SELECT coalesce(sum(amount), 0), count(*) INTO total, n FROM ledger_entries WHERE transfer_id = tid;
    IF total <> 0 OR n < 2 THEN
        RAISE EXCEPTION 'ledger transfer % is unbalanced: % entries summing to %', tid, n, total
            USING ERRCODE = 'check_violation';
    END IF;
END $$;
