import type { Db } from './rows.js';

/**
 * Records a Stripe event as applied; false when it was already (a redelivery). Called in the
 * transaction of the change the event makes, so an event is applied exactly when it is recorded;
 * a concurrent delivery of the same event waits on the primary key and then gets false.
 */
export async function recordStripeEvent(db: Db, id: string, type: string): Promise<boolean> {
  const r = await db.query('INSERT INTO stripe_events (id, type) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [id, type]);
  return r.rowCount === 1;
}
