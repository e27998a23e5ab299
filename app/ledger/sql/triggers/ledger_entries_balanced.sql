-- Every INSERT statement on ledger_entries leaves each transfer it touched
-- balanced (function ledger_entries_balanced).
CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON public.ledger_entries
    REFERENCING NEW TABLE AS inserted_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_balanced();
