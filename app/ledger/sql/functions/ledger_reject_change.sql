-- Entries and transfers are append-only: UPDATE, DELETE and TRUNCATE are
-- refused (a correction is a reversing transfer).
CREATE OR REPLACE FUNCTION public.ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused (post a reversing transfer instead)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'check_violation';
END $$;
