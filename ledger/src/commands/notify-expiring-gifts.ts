import { inTransaction, type Pool } from '@meterstream/platform/postgres';
import { formatMicros, type Currency } from '@meterstream/schemas';
import { recordNotifications } from '../outbox.js';

/** A gift is told expiring this long before its expiry (seed 000; the balance flags it as expiring_soon as well). */
export const GIFT_EXPIRING_WITHIN_MS = 24 * 3_600_000;

/** The one cause a gift's notice has: a grant is told expiring once. */
export const giftExpiringCause = (grantId: string) => `gift.expiring:${grantId}`;

/**
 * Tells gift.expiring for every gift with credits left that expires within 24 hours of `nowMs`
 * and has not been told: once per grant (the outbox's unique cause), however often it runs. No
 * money moves, so it is no ledger command: one transaction per `batchSize` gifts writes their
 * notifications. `accounts` limits it to some accounts (tests, which share one database).
 */
export async function notifyExpiringGifts(
  pool: Pool, opts: { nowMs: number; batchSize?: number; accounts?: readonly string[] },
): Promise<number> {
  const batchSize = opts.batchSize ?? 500;
  let told = 0;
  for (;;) {
    const n = await inTransaction(pool, async (c) => {
      const r = await c.query<{ id: string; account_id: string; currency: Currency; remaining: bigint; expires_at: Date }>(
        `SELECT g.id, g.account_id, a.currency, g.remaining, g.expires_at
           FROM grants g JOIN accounts a ON a.id = g.account_id
          WHERE g.kind = 'gift' AND g.remaining > 0 AND a.closed_at IS NULL
            AND g.expires_at > to_timestamp($1::double precision / 1000) AND g.expires_at <= to_timestamp($2::double precision / 1000)
            AND ($4::text[] IS NULL OR g.account_id = ANY($4::text[]))
            AND NOT EXISTS (SELECT 1 FROM notifications_outbox o WHERE o.account_id = g.account_id AND o.cause = $5 || g.id)
          ORDER BY g.expires_at LIMIT $3`,
        [opts.nowMs, opts.nowMs + GIFT_EXPIRING_WITHIN_MS, batchSize, opts.accounts ?? null, giftExpiringCause('')],
      );
      const timestamp = new Date(opts.nowMs).toISOString();
      await recordNotifications(c, r.rows.map((g) => ({
        accountId: g.account_id, cause: giftExpiringCause(g.id),
        payload: {
          type: 'gift.expiring', timestamp,
          data: { account_id: g.account_id, grant_id: g.id, currency: g.currency, remaining: formatMicros(g.remaining), expires_at: g.expires_at.toISOString() },
        },
      })), opts.nowMs);
      return r.rows.length;
    });
    told += n;
    if (n < batchSize) return told;
  }
}
