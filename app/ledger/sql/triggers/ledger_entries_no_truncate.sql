-- ledger_entries is append-only: no TRUNCATE (function ledger_reject_change).
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON public.ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();
