-- Ids are at most 128 characters: the same limit as the contract's ID_MAX_LENGTH
-- (schemas/src/contracts/common.ts) and the HTTP router's path parameters, so that nothing the
-- database holds is out of reach of the API, and nothing the API accepts is refused here.
ALTER TABLE accounts ADD CONSTRAINT accounts_id_length CHECK (char_length(id) BETWEEN 1 AND 128);
ALTER TABLE grants ADD CONSTRAINT grants_id_length CHECK (char_length(id) BETWEEN 1 AND 128);
ALTER TABLE prices ADD CONSTRAINT prices_product_length CHECK (char_length(product) BETWEEN 1 AND 128);
ALTER TABLE usage_ledger
  ADD CONSTRAINT usage_ledger_account_id_length CHECK (char_length(account_id) BETWEEN 1 AND 128),
  ADD CONSTRAINT usage_ledger_event_id_length CHECK (char_length(event_id) BETWEEN 1 AND 128),
  ADD CONSTRAINT usage_ledger_product_length CHECK (char_length(product) BETWEEN 1 AND 128);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_account_id_length CHECK (char_length(account_id) BETWEEN 1 AND 128);
