import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { BillingMode, Currency } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

export class AccountNotFoundError extends Error {
  override readonly name = 'AccountNotFoundError';
  constructor(readonly accountId: string) {
    super(`account ${accountId} does not exist`);
  }
}

export interface AccountRecord {
  id: string;
  email: string;
  currency: Currency;
  billingMode: BillingMode;
  createdAt: Date;
}

export interface NewAccount {
  /** Chosen by the caller (seeded data, tests); otherwise acct_ and 24 random hex digits. */
  id?: string;
  email: string;
  currency: Currency;
  billingMode: BillingMode;
}

/** A row of accounts as pg returns it, parsed into the domain type. */
export const AccountRow = z
  .object({ id: z.string(), email: z.string(), currency: Currency, billing_mode: BillingMode, created_at: z.date() })
  .transform((r): AccountRecord => ({ id: r.id, email: r.email, currency: r.currency, billingMode: r.billing_mode, createdAt: r.created_at }));

const COLUMNS = 'id, email, currency, billing_mode, created_at';

/** Opens an account with no money state yet: no grants, no overdraft, ledger_seq 0. */
export async function createAccount(db: Db, input: NewAccount): Promise<AccountRecord> {
  const id = input.id ?? `acct_${randomBytes(12).toString('hex')}`;
  const [account] = await queryRows(db, 'accounts', AccountRow,
    `INSERT INTO accounts (id, email, currency, billing_mode) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
    [id, input.email, input.currency, input.billingMode]);
  return account!;
}

export async function getAccount(db: Db, id: string): Promise<AccountRecord | undefined> {
  const [account] = await queryRows(db, 'accounts', AccountRow, `SELECT ${COLUMNS} FROM accounts WHERE id = $1`, [id]);
  return account;
}
