-- Trigger function of ledger_transfers_balanced: a transfer with no entries at
-- all is refused at COMMIT (the per-statement entries check never sees it).
CREATE OR REPLACE FUNCTION public.ledger_transfers_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM ledger_assert_balanced(NEW.id); RETURN NULL; END $$;
