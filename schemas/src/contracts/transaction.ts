import { z } from 'zod';
import { Id, IsoTimestamp, MoneyString, SignedMoneyString } from './common.js';
import { LedgerEntryKind } from './ledger-entry.js';
import { Unit } from './price.js';

/** What a row of an account's history records: usage, or a kind of ledger entry. */
export const TransactionKind = z.enum(['usage', ...LedgerEntryKind.options]);
export type TransactionKind = z.infer<typeof TransactionKind>;

const common = {
  seq: z.number().int().positive().describe("the account's ledger seq: the history's order"),
  timestamp: z.string().describe('when it happened: the event time of usage, the commit time of an entry'),
  amount: MoneyString.describe('credits moved, always non-negative; `direction` says which way'),
  direction: z.enum(['debit', 'credit']).describe('debit: credits taken (usage); credit: credits added (a grant)'),
  balance_after: SignedMoneyString.describe('remaining balance after this row'),
};

// The seed's four fields of a deduction (timestamp, action type, credits deducted, remaining
// balance) keep their names; the rest says what the row is.
const UsageTransaction = z.object({
  kind: z.literal('usage'),
  ...common,
  action: z.string().describe('the product used'),
  quantity: MoneyString.describe('decimal quantity in `unit`'),
  unit: Unit,
  event_id: z.string(),
  rated_at: z.string(),
});

const EntryTransaction = z.object({
  kind: LedgerEntryKind,
  ...common,
  action: LedgerEntryKind.describe('the kind of movement'),
  entry_id: Id,
  grant_id: Id.nullable().describe('the grant this entry created or changed'),
  overdraft_paid: MoneyString.describe('part of the amount that paid a prepaid overdraft off'),
  reason: z.string().nullable(),
});

export const Transaction = z.discriminatedUnion('kind', [UsageTransaction, EntryTransaction]);
export type Transaction = z.infer<typeof Transaction>;

export const TransactionPage = z.object({
  transactions: z.array(Transaction).describe('newest first (highest seq first)'),
  next_cursor: z.string().nullable().describe('pass as ?cursor= for the next (older) page; null on the last page'),
});
export type TransactionPage = z.infer<typeof TransactionPage>;

export const TransactionQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  // A cursor of the longest seq and id is 208 characters of base64url.
  cursor: z.string().max(256).optional(),
  kind: TransactionKind.optional().describe('only rows of this kind'),
  from: IsoTimestamp.optional().describe('only rows at or after this time (inclusive); must be before `to`'),
  to: IsoTimestamp.optional().describe('only rows before this time (exclusive)'),
});
export type TransactionQuery = z.infer<typeof TransactionQuery>;

/** The filters of the CSV export: the list's, without its paging. */
export const TransactionExportQuery = TransactionQuery.omit({ limit: true, cursor: true });
export type TransactionExportQuery = z.infer<typeof TransactionExportQuery>;
