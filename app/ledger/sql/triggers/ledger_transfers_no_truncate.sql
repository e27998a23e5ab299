-- ledger_transfers is append-only: no TRUNCATE (function ledger_reject_change).
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON public.ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();
