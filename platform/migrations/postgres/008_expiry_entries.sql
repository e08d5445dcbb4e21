-- Expired credits leave the balance through a ledger entry of kind 'expiry' (the amount lost,
-- negative), written by ledger/src/commands/expire-grants.ts. The list repeats LedgerEntryKind
-- (schemas/src/contracts/ledger-entry.ts); a later migration adding a kind repeats the whole list.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('grant', 'expiry'));

-- What the expiry sweep selects: grants with something left, by expiry instant.
CREATE INDEX grants_expiring ON grants (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
