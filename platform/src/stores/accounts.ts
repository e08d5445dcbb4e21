import { randomBytes } from 'node:crypto';
import { inTransaction, type Pool } from '../postgres.js';
import { z } from 'zod';
import { BillingMode, Currency } from '@meterstream/schemas';
import { defaultPlanId } from './plans.js';
import { queryRows, type Db } from './rows.js';

export class AccountNotFoundError extends Error {
  override readonly name = 'AccountNotFoundError';
  constructor(readonly accountId: string) {
    super(`account ${accountId} does not exist`);
  }
}

export interface AccountRecord {
  id: string;
  /** null: provisioned on a tenant's first use (migration 015), nobody signed up. */
  email: string | null;
  currency: Currency;
  billingMode: BillingMode;
  planId: string;
  /** The day of the month (UTC) its periods start on. */
  billingAnchorDay: number;
  createdAt: Date;
  /** Set by closeAccount: its keys are revoked and the rater dead-letters its events. */
  closedAt: Date | null;
}

export interface NewAccount {
  /** Chosen by the caller (seeded data, tests); otherwise acct_ and 24 random hex digits. */
  id?: string;
  email: string;
  currency: Currency;
  billingMode: BillingMode;
  /** A plan of the account's currency and billing mode; by default defaultPlanId of them. */
  planId?: string;
  /** 1 to 28; by default 1 (calendar months). */
  billingAnchorDay?: number;
}

/** A row of accounts as pg returns it, parsed into the domain type. */
export const AccountRow = z
  .object({
    id: z.string(), email: z.string().nullable(), currency: Currency, billing_mode: BillingMode, plan_id: z.string(), billing_anchor_day: z.number().int(),
    created_at: z.date(), closed_at: z.date().nullable(),
  })
  .transform((r): AccountRecord => ({
    id: r.id, email: r.email, currency: r.currency, billingMode: r.billing_mode, planId: r.plan_id, billingAnchorDay: r.billing_anchor_day,
    createdAt: r.created_at, closedAt: r.closed_at,
  }));

const COLUMNS = 'id, email, currency, billing_mode, plan_id, billing_anchor_day, created_at, closed_at';

/** Opens an account with no money state yet: no grants, no overdraft, ledger_seq 0. */
export async function createAccount(db: Db, input: NewAccount): Promise<AccountRecord> {
  const id = input.id ?? `acct_${randomBytes(12).toString('hex')}`;
  const [account] = await queryRows(db, 'accounts', AccountRow,
    `INSERT INTO accounts (id, email, currency, billing_mode, plan_id, billing_anchor_day) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [id, input.email, input.currency, input.billingMode, input.planId ?? defaultPlanId(input.currency, input.billingMode), input.billingAnchorDay ?? 1]);
  return account!;
}

export async function getAccount(db: Db, id: string): Promise<AccountRecord | undefined> {
  const [account] = await queryRows(db, 'accounts', AccountRow, `SELECT ${COLUMNS} FROM accounts WHERE id = $1`, [id]);
  return account;
}

/**
 * Closes the account (DELETE /v1/accounts/{id}): closed_at set once and its keys revoked in one
 * transaction; its grants and history stay for the records. Answers the account and the hashes of
 * the keys it revoked now, which every key cache must evict (a repeated close revokes none).
 */
export async function closeAccount(pool: Pool, id: string): Promise<{ account: AccountRecord; revokedKeyHashes: string[] }> {
  return inTransaction(pool, async (c) => {
    const [account] = await queryRows(c, 'accounts', AccountRow,
      `UPDATE accounts SET closed_at = coalesce(closed_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
    if (!account) throw new AccountNotFoundError(id);
    const revoked = await c.query<{ key_hash: string }>(
      'UPDATE api_keys SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL RETURNING key_hash', [id]);
    return { account, revokedKeyHashes: revoked.rows.map((r) => r.key_hash) };
  });
}
