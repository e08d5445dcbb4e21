import type { Logger } from '@meterstream/platform/logger';
import { inTransaction, type Pool, type PoolClient } from '@meterstream/platform/postgres';
import { lockAccountRow, startAutoTopUps, type AutoTopUpTrigger } from '@meterstream/platform/stores/auto-top-ups';
import { balanceAt, type AccountState } from '../account-state.js';

/**
 * The accounts a change took from above their automatic top-up threshold to at or below it
 * (seed 003: "if you run out of credits the system automatically tops up your account"), judged
 * from the states the change locked (their alerts carry the threshold) and left: no query. A
 * crossing, not a level: a balance that stays under starts nothing more from the rater (the
 * gate's refusals ask again), so a declined card is not charged once per batch. The trigger is
 * named after the ledger seq the change left, one per crossing.
 */
export function autoTopUpTriggers(changes: Iterable<{ before: AccountState; after: AccountState }>, nowMs: number): AutoTopUpTrigger[] {
  const triggers: AutoTopUpTrigger[] = [];
  for (const { before, after } of changes) {
    const at = before.alerts?.autoTopUpAt;
    if (at === null || at === undefined) continue;
    if (balanceAt(after, nowMs) <= at && balanceAt(before, nowMs) > at) triggers.push({ accountId: before.id, trigger: `rater:${after.ledgerSeq}` });
  }
  return triggers;
}

/**
 * The rater's hook, inside its batch transaction: the top-ups the batch's crossings call for, in
 * one INSERT, and none at all (no statement) when nothing crossed. They commit with the batch;
 * the commit wakes the charger (NOTIFY auto_top_ups_due), which calls Stripe outside any
 * transaction of the rater.
 */
export async function triggerAutoTopUps(c: PoolClient, changes: Iterable<{ before: AccountState; after: AccountState }>, nowMs: number): Promise<number> {
  const triggers = autoTopUpTriggers(changes, nowMs);
  if (triggers.length === 0) return 0;
  return (await startAutoTopUps(c, triggers, nowMs)).length;
}

/**
 * The gate's hook: a refusal for want of credits asks for an automatic top-up, named after the
 * account's ledger seq (gate:<seq>), so the refusals of a burst at one balance ask once. Off the
 * gate's answer (it does not wait), and at most one statement in flight per account in this
 * process; Postgres decides (settings, saved card, caps, one in flight).
 */
export class GateAutoTopUp {
  private readonly asking = new Set<string>();

  constructor(private readonly deps: { pool: Pool; log: Pick<Logger, 'warn'>; now: () => number }) {}

  refused(accountId: string): void {
    if (this.asking.has(accountId)) return;
    this.asking.add(accountId);
    // The account row first, as the rater holds it when it inserts: one lock order, no deadlock.
    inTransaction(this.deps.pool, async (c) => {
      await lockAccountRow(c, accountId);
      await startAutoTopUps(c, [{ accountId, trigger: null }], this.deps.now());
    })
      .catch((err: unknown) => this.deps.log.warn({ err, accountId }, 'could not start an automatic top-up after a refusal'))
      .finally(() => this.asking.delete(accountId));
  }
}
