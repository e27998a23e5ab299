-- At COMMIT, every new transfer has balanced entries (at least two): catches a
-- transfer that never got any.
CREATE CONSTRAINT TRIGGER ledger_transfers_balanced AFTER INSERT ON public.ledger_transfers
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_balanced();
