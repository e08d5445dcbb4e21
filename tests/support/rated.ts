import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import type { Pool } from '@meterstream/platform/postgres';
import { priceMicros } from '@meterstream/schemas';

/** A rated event as the rater commits it (usage_ledger) and the sink copies it (rated_events). */
export interface Rated {
  account: string;
  product: string;
  /** units, whole */
  quantity: bigint;
  unitPrice: bigint;
  per?: bigint;
  unit?: string;
  /** of the amount, what free credits paid (the rest is postpaid) */
  fromGrants?: bigint;
  at: number;
  ratedAt: number;
  eventId?: string;
}

const chTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
let seq = 0;

/**
 * Writes rated events to both stores as the rater and the sink would: usage_ledger and the
 * month's postpaid accrual in Postgres, rated_events in ClickHouse. `only` plants a difference.
 * Seeds the invoicer's tests and its bench phase.
 */
export async function rate(stack: { pool: Pool }, ch: { ch: ClickHouseClient; database: string }, events: Rated[], only?: 'clickhouse' | 'postgres'): Promise<void> {
  const rows = events.map((e) => {
    const quantity = e.quantity * 1_000_000n;
    const per = e.per ?? 1n;
    const amount = priceMicros(quantity, e.unitPrice, per);
    const fromGrants = e.fromGrants ?? 0n;
    return { ...e, eventId: e.eventId ?? randomUUID(), quantity, per, amount, fromGrants, postpaid: amount - fromGrants, unit: e.unit ?? 'token', seq: ++seq };
  });
  if (only !== 'clickhouse') {
    await stack.pool.query(
      `INSERT INTO usage_ledger (account_id, event_id, seq, product, quantity, unit, unit_price, per, amount, from_grants, postpaid, overdraft,
                                 grant_split, balance_after, event_time, rated_at, src_topic, src_partition, src_offset)
       SELECT account_id, event_id, seq, product, quantity, unit, unit_price, per, amount, from_grants, postpaid, 0, '[]', 0,
              to_timestamp(at::double precision / 1000), to_timestamp(rated_at::double precision / 1000), 'test', 0, seq
         FROM json_to_recordset($1::json) AS v(account_id text, event_id text, seq bigint, product text, quantity bigint, unit text, unit_price bigint,
              per bigint, amount bigint, from_grants bigint, postpaid bigint, at bigint, rated_at bigint)`,
      [JSON.stringify(rows.map((r) => ({
        account_id: r.account, event_id: r.eventId, seq: r.seq, product: r.product, quantity: String(r.quantity), unit: r.unit, unit_price: String(r.unitPrice),
        per: String(r.per), amount: String(r.amount), from_grants: String(r.fromGrants), postpaid: String(r.postpaid), at: r.at, rated_at: r.ratedAt,
      })))]);
    await stack.pool.query(
      `INSERT INTO postpaid_usage (account_id, month, amount)
       SELECT account_id, (month || '-01')::date, sum(amount) FROM json_to_recordset($1::json) AS v(account_id text, month text, amount bigint) GROUP BY 1, 2
       ON CONFLICT (account_id, month) DO UPDATE SET amount = postpaid_usage.amount + excluded.amount`,
      [JSON.stringify(rows.map((r) => ({ account_id: r.account, month: new Date(r.at).toISOString().slice(0, 7), amount: String(r.postpaid) })))]);
  }
  if (only !== 'postgres') {
    await ch.ch.insert({
      table: `${ch.database}.rated_events`, format: 'JSONEachRow',
      values: rows.map((r) => ({
        account_id: r.account, event_id: r.eventId, product: r.product, currency: 'USD', unit: r.unit, quantity: String(r.quantity),
        unit_price: String(r.unitPrice), per: String(r.per), amount: String(r.amount), from_grants: String(r.fromGrants), postpaid: String(r.postpaid),
        overdraft: 0, balance_after: 0, ledger_seq: r.seq, grants: '[]', properties: {}, event_time: chTime(r.at), rated_at: chTime(r.ratedAt),
      })),
    });
  }
}
