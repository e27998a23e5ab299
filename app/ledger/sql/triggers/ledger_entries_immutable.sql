-- ledger_entries is append-only: no UPDATE, no DELETE (function ledger_reject_change).
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON public.ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
