// The demo's workload as a service selling usage runs it: every call through the spend gate with
// the producer SDK's withCredits (authorize a hold for the call's price, run the work, capture
// the hold with a usage event; release it when the work fails). Refusals are counted by code.
import { CreditsRefusedError, type CreditsClient } from '@meterstream/ingest';
import type { UsageEventInput } from '@meterstream/schemas';

/** The work that fails: one call in FAIL_EVERY, released at zero cost. */
const FAIL_EVERY = 40;
class WorkFailed extends Error {}

export interface GateTally {
  calls: number;
  /** captured: the work ran and its usage event was accepted */
  captured: number;
  /** the work failed: its hold released, the call cost zero */
  released: number;
  /** refusals by code (PAYMENT_REQUIRED, MONTHLY_LIMIT_REACHED, CARD_REQUIRED, ...) */
  refused: Map<string, number>;
  /** 402 PAYMENT_REQUIRED per account */
  paymentRequiredBy: Map<string, number>;
  /** anything else (the gate undecided, a capture not confirmed) */
  errors: string[];
}

export const newTally = (): GateTally => ({ calls: 0, captured: 0, released: 0, refused: new Map(), paymentRequiredBy: new Map(), errors: [] });

/** Runs `calls` through the gate, `concurrency` at a time, adding to `tally`. */
export async function throughGate(client: CreditsClient, calls: Iterable<UsageEventInput>, tally: GateTally, concurrency = 48): Promise<void> {
  const it = calls[Symbol.iterator]();
  const worker = async () => {
    for (let next = it.next(); !next.done; next = it.next()) await oneCall(client, next.value, tally);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export async function oneCall(client: CreditsClient, call: UsageEventInput, tally: GateTally): Promise<boolean> {
  const n = ++tally.calls;
  try {
    await client.withCredits({ account: call.account_id, product: call.product, maxQuantity: String(call.quantity) }, async () => {
      if (n % FAIL_EVERY === 0) throw new WorkFailed('the model call failed');
      return String(call.quantity);
    });
    tally.captured += 1;
    return true;
  } catch (e) {
    if (e instanceof WorkFailed) tally.released += 1;
    else if (e instanceof CreditsRefusedError) {
      tally.refused.set(e.code, (tally.refused.get(e.code) ?? 0) + 1);
      if (e.code === 'PAYMENT_REQUIRED') tally.paymentRequiredBy.set(call.account_id, (tally.paymentRequiredBy.get(call.account_id) ?? 0) + 1);
    } else tally.errors.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    return false;
  }
}
