import { formatMicros, priceMicros, toMicros, type UsageEventInput } from '@meterstream/schemas';
import type { Pool } from '@meterstream/platform/postgres';
import { now } from './produce.js';
import { PRICE_LIST } from './workload.js';

export interface NaiveResult {
  events: number;
  connections: number;
  seconds: number;
  eventsPerSecond: number;
  charged: number;
  duplicates: number;
  exact: { ok: boolean; detail: string };
}

const PRICES = new Map(Object.entries(PRICE_LIST).map(([p, v]) => [p, { unitPrice: toMicros(v.unit_price), per: BigInt(v.per) }]));

/**
 * What a Postgres-only biller does: one transaction per event that locks the account's balance row,
 * inserts the ledger row (its primary key rejects a re-sent event) and updates the balance. Several
 * connections work through the events concurrently; its own schema, so it shares nothing with the rater.
 */
export async function runNaive(pool: Pool, events: readonly UsageEventInput[], accounts: readonly string[], connections: number): Promise<NaiveResult> {
  await pool.query(`
    DROP SCHEMA IF EXISTS naive CASCADE;
    CREATE SCHEMA naive;
    CREATE TABLE naive.balances (account_id text PRIMARY KEY, balance bigint NOT NULL);
    CREATE TABLE naive.ledger (
      account_id text NOT NULL, event_id text NOT NULL, product text NOT NULL, quantity bigint NOT NULL,
      amount bigint NOT NULL, balance_after bigint NOT NULL, event_time timestamptz NOT NULL,
      rated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (account_id, event_id));`);
  const START = 100_000_000n; // 100.000000 of credit each
  await pool.query('INSERT INTO naive.balances SELECT unnest($1::text[]), $2', [accounts, START.toString()]);

  let next = 0;
  let charged = 0;
  let duplicates = 0;
  const worker = async () => {
    const c = await pool.connect();
    try {
      for (;;) {
        const e = events[next++];
        if (!e) return;
        const price = PRICES.get(e.product)!;
        const amount = priceMicros(toMicros(e.quantity), price.unitPrice, price.per);
        await c.query('BEGIN');
        try {
          const bal = await c.query<{ balance: bigint }>('SELECT balance FROM naive.balances WHERE account_id = $1 FOR UPDATE', [e.account_id]);
          const after = bal.rows[0]!.balance - amount;
          const ins = await c.query(
            `INSERT INTO naive.ledger (account_id, event_id, product, quantity, amount, balance_after, event_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account_id, event_id) DO NOTHING`,
            [e.account_id, e.id, e.product, toMicros(e.quantity).toString(), amount.toString(), after.toString(), e.timestamp],
          );
          if (ins.rowCount === 1) {
            await c.query('UPDATE naive.balances SET balance = $2 WHERE account_id = $1', [e.account_id, after.toString()]);
            charged++;
          } else {
            duplicates++;
          }
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }
    } finally {
      c.release();
    }
  };
  const t0 = now();
  await Promise.all(Array.from({ length: connections }, worker));
  const seconds = (now() - t0) / 1000;

  // The baseline is held to the same standard: each distinct event once, balances moved by exactly that.
  const seen = new Set<string>();
  let want = 0n;
  for (const e of events) {
    const k = `${e.account_id}\u0000${e.id}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const p = PRICES.get(e.product)!;
    want += priceMicros(toMicros(e.quantity), p.unitPrice, p.per);
  }
  const led = (await pool.query<{ n: bigint; s: bigint | null }>('SELECT count(*) AS n, sum(amount)::bigint AS s FROM naive.ledger')).rows[0]!;
  const bal = (await pool.query<{ s: bigint }>('SELECT sum($1::bigint - balance)::bigint AS s FROM naive.balances', [START.toString()])).rows[0]!;
  const ok = led.n === BigInt(seen.size) && (led.s ?? 0n) === want && bal.s === want;
  return {
    events: events.length, connections, seconds, eventsPerSecond: events.length / seconds, charged, duplicates,
    exact: { ok, detail: `ledger ${led.n} rows sum ${formatMicros(led.s ?? 0n)}, balances moved ${formatMicros(bal.s)}; expected ${seen.size} rows sum ${formatMicros(want)}` },
  };
}
