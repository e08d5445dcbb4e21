import { z } from 'zod';
import { Currency, Id, IsoTimestamp, MoneyString, SignedMoneyString, StorableString } from './common.js';

/**
 * What moved the money. Usage is not a kind here: it keeps its own row (usage_ledger), topic
 * (usage.rated) and table (rated_events), built for its volume; every other movement is an entry.
 * To add a kind (adjustment, refund, addon, topup, ...) when a command starts producing
 * it: add it here and to the CHECK list of ledger_entries.kind in a new Postgres migration
 * (platform/test/enums-match-sql.test.ts compares the two); ClickHouse stores the kind as text
 * and the transactions list offers every kind as a filter, so neither needs more.
 */
export const LedgerEntryKind = z.enum(['grant', 'expiry', 'addon', 'adjustment', 'plan_change', 'payment', 'suspension', 'reinstatement', 'refund']);
export type LedgerEntryKind = z.infer<typeof LedgerEntryKind>;

/**
 * A caller's key for one money movement: the same key again returns the first result instead of
 * moving the money twice (a retried request, a redelivered webhook).
 */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255;
export const IdempotencyKey = StorableString.min(1).max(IDEMPOTENCY_KEY_MAX_LENGTH)
  .describe(`1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} characters, unique per account and movement`);

export const LEDGER_ENTRY_REASON_MAX_LENGTH = 500;

/**
 * One money movement other than usage, as committed in Postgres (ledger_entries) and published
 * on ledger.entries after the commit. `seq` is the account's ledger seq, shared with its usage
 * rows (RatedEvent.ledger_seq): together they order the account's whole history.
 */
export const LedgerEntry = z.object({
  entry_id: Id,
  account_id: Id,
  seq: z.number().int().positive().describe("the account's ledger seq, shared with its usage rows"),
  kind: LedgerEntryKind,
  amount: SignedMoneyString.describe('signed: positive adds credits, negative takes them away'),
  currency: Currency,
  grant_id: Id.nullable().describe('the grant this entry created or changed'),
  overdraft_paid: MoneyString.describe('part of the amount that paid a prepaid overdraft off'),
  balance_after: SignedMoneyString,
  reason: StorableString.max(LEDGER_ENTRY_REASON_MAX_LENGTH).nullable(),
  idempotency_key: IdempotencyKey,
  created_at: IsoTimestamp,
});
export type LedgerEntry = z.infer<typeof LedgerEntry>;
