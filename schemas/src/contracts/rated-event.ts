import { z } from 'zod';
import { Currency, Id, IsoTimestamp, MoneyString, SignedMoneyString } from './common.js';
import { GrantKind } from './account.js';
import { Unit } from './price.js';
import { WorkspaceId } from './workspace.js';
import { HoldId } from './hold.js';

/** What the rater publishes on usage.rated once the charge is committed in Postgres. */
export const RatedEvent = z.object({
  event_id: Id,
  account_id: Id,
  product: Id,
  quantity: MoneyString.describe('decimal quantity in `unit`'),
  unit: Unit,
  unit_price: MoneyString,
  per: z.number().int().positive(),
  currency: Currency,
  amount: MoneyString.describe('priced cost of the event'),
  grants: z.array(z.object({ grant_id: z.string(), kind: GrantKind, amount: MoneyString })),
  postpaid: MoneyString.describe('part accrued as postpaid usage'),
  overdraft: MoneyString.describe('part that took a prepaid account below zero'),
  balance_after: SignedMoneyString,
  ledger_seq: z.number().int().positive(),
  timestamp: IsoTimestamp,
  rated_at: IsoTimestamp,
  properties: z.record(z.string(), z.string()).optional(),
  workspace_id: WorkspaceId.optional(),
  hold_id: HoldId.optional().describe('the hold the event captured: amount is at most the hold'),
});
export type RatedEvent = z.infer<typeof RatedEvent>;
