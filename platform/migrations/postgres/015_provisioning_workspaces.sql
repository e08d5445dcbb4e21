-- Accounts provisioned on first use (seed 002) and usage per workspace (seeds 000, 004).

-- A tenant's service key that names an unknown account creates it (tenant default plan with
-- provision_on_first_use): nobody signed up, so there is no email, no owner member and no
-- signup gift (the gift is once per email). Only a tenant's account may lack an email.
ALTER TABLE accounts ALTER COLUMN email DROP NOT NULL,
  ADD CONSTRAINT accounts_email_or_tenant CHECK (email IS NOT NULL OR tenant_id IS NOT NULL);
-- The owner member is the address the account was opened with: none without one. The trigger is
-- made conditional rather than its function replaced, so whatever that function does stays.
DROP TRIGGER accounts_owner_member ON accounts;
CREATE TRIGGER accounts_owner_member AFTER INSERT ON accounts FOR EACH ROW WHEN (NEW.email IS NOT NULL)
  EXECUTE FUNCTION accounts_owner_member();

-- The workspace a rated event named (null: none), kept in the ledger so that republishing a row
-- after a crash gives the same usage.rated message. Not checked against workspaces: an event
-- names its workspace as the producer knows it, and a deleted workspace keeps its usage.
ALTER TABLE usage_ledger ADD COLUMN workspace_id text;
