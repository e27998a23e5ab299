-- ledger_transfers is append-only: no UPDATE, no DELETE (function ledger_reject_change).
CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON public.ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();
