import type { Pool, PoolClient } from '@meterstream/schemas/postgres';
import type { RatedEvent } from '@meterstream/schemas';
import { eventKey, type LedgerRow, type RatedBatch } from './rate-batch.js';

const str = (v: bigint | number) => v.toString();

/** Locks this partition's offset row and returns where rating must resume. */
export async function lockOffsets(
  c: PoolClient, groupId: string, topic: string, partition: number, firstOffset: string,
): Promise<{ next: bigint; published: bigint }> {
  const r = await c.query<{ next_offset: bigint; published_offset: bigint }>(
    `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, published_offset)
     VALUES ($1, $2, $3, $4, $4)
     ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = consumer_offsets.next_offset
     RETURNING next_offset, published_offset`,
    [groupId, topic, partition, firstOffset],
  );
  const row = r.rows[0]!;
  return { next: row.next_offset, published: row.published_offset };
}

/** Which of these events the ledger already holds (a re-send, or a redelivery at another offset). */
export async function findRated(c: PoolClient, keys: readonly { account: string; event: string }[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const r = await c.query<{ account_id: string; event_id: string }>(
    `SELECT l.account_id, l.event_id FROM usage_ledger l
       JOIN unnest($1::text[], $2::text[]) AS k(account_id, event_id)
         ON l.account_id = k.account_id AND l.event_id = k.event_id`,
    [keys.map((k) => k.account), keys.map((k) => k.event)],
  );
  return new Set(r.rows.map((x) => eventKey(x.account_id, x.event_id)));
}

/** Writes a rated batch in a fixed number of statements, whatever its size. */
export async function writeBatch(
  c: PoolClient, batch: RatedBatch, src: { groupId: string; topic: string; partition: number; nextOffset: string }, ratedAt: string,
): Promise<void> {
  const rows = batch.rows;
  if (rows.length > 0) {
    const cols: (string | null)[][] = Array.from({ length: 20 }, () => []);
    for (const r of rows) {
      const v = [
        r.accountId, r.eventId, str(r.seq), r.product, str(r.quantity), r.unit, str(r.unitPrice), str(r.per),
        str(r.amount), str(r.fromGrants), str(r.postpaid), str(r.overdraft),
        JSON.stringify(r.takes.map((t) => ({ grant_id: t.grantId, kind: t.kind, amount: str(t.amount) }))),
        str(r.balanceAfter), new Date(r.eventMs).toISOString(), ratedAt,
        r.properties ? JSON.stringify(r.properties) : null, src.topic, String(src.partition), r.offset,
      ];
      for (let i = 0; i < v.length; i++) cols[i]!.push(v[i]!);
    }
    await c.query(
      `INSERT INTO usage_ledger (account_id, event_id, seq, product, quantity, unit, unit_price, per, amount, from_grants,
         postpaid, overdraft, grant_split, balance_after, event_time, rated_at, properties, src_topic, src_partition, src_offset)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
         $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::jsonb[], $14::bigint[],
         $15::timestamptz[], $16::timestamptz[], $17::jsonb[], $18::text[], $19::int[], $20::bigint[])`,
      cols,
    );
  }
  if (batch.grantRemaining.size > 0) {
    await c.query(
      `UPDATE grants g SET remaining = v.remaining FROM unnest($1::text[], $2::bigint[]) AS v(id, remaining) WHERE g.id = v.id`,
      [[...batch.grantRemaining.keys()], [...batch.grantRemaining.values()].map(str)],
    );
  }
  if (batch.changed.size > 0) {
    const states = [...batch.changed.values()];
    await c.query(
      `UPDATE accounts a SET overdraft = v.overdraft, ledger_seq = v.seq
         FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(id, overdraft, seq) WHERE a.id = v.id`,
      [states.map((s) => s.id), states.map((s) => str(s.overdraft)), states.map((s) => str(s.ledgerSeq))],
    );
  }
  if (batch.postpaid.size > 0) {
    const keys = [...batch.postpaid.keys()].map((k) => k.split('\u0000') as [string, string]);
    await c.query(
      `INSERT INTO postpaid_usage (account_id, month, amount)
       SELECT id, (m || '-01')::date, amt FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(id, m, amt)
       ON CONFLICT (account_id, month) DO UPDATE SET amount = postpaid_usage.amount + excluded.amount`,
      [keys.map((k) => k[0]), keys.map((k) => k[1]), [...batch.postpaid.values()].map(str)],
    );
  }
  await c.query(
    'UPDATE consumer_offsets SET next_offset = $4 WHERE group_id = $1 AND topic = $2 AND partition = $3',
    [src.groupId, src.topic, src.partition, src.nextOffset],
  );
}

interface LedgerDbRow {
  account_id: string; event_id: string; seq: bigint; product: string; quantity: bigint; unit: string;
  unit_price: bigint; per: bigint; amount: bigint; from_grants: bigint; postpaid: bigint; overdraft: bigint;
  grant_split: { grant_id: string; kind: string; amount: string }[]; balance_after: bigint; event_time: Date;
  rated_at: Date; properties: Record<string, string> | null; src_offset: bigint; currency: RatedEvent['currency'];
}

/** Ledger rows a crashed rater committed but may not have published, for re-publishing. */
export async function ledgerRowsInRange(
  c: PoolClient, topic: string, partition: number, from: bigint, to: bigint,
): Promise<{ row: LedgerRow; ratedAt: string }[]> {
  const r = await c.query<LedgerDbRow>(
    `SELECT l.*, a.currency FROM usage_ledger l JOIN accounts a ON a.id = l.account_id
      WHERE l.src_topic = $1 AND l.src_partition = $2 AND l.src_offset >= $3 AND l.src_offset < $4
      ORDER BY l.src_offset`,
    [topic, partition, str(from), str(to)],
  );
  return r.rows.map((d) => ({
    ratedAt: d.rated_at.toISOString(),
    row: {
      accountId: d.account_id, eventId: d.event_id, product: d.product, quantity: d.quantity,
      properties: d.properties ?? undefined, currency: d.currency, eventMs: d.event_time.getTime(),
      offset: str(d.src_offset), seq: d.seq, unit: d.unit, unitPrice: d.unit_price, per: d.per, amount: d.amount,
      fromGrants: d.from_grants, postpaid: d.postpaid, overdraft: d.overdraft,
      takes: d.grant_split.map((t) => ({ grantId: t.grant_id, kind: t.kind, amount: BigInt(t.amount) })),
      balanceAfter: d.balance_after,
    },
  }));
}

export async function markPublished(c: Pool | PoolClient, groupId: string, topic: string, partition: number, upTo: bigint): Promise<void> {
  await c.query(
    `UPDATE consumer_offsets SET published_offset = $4
      WHERE group_id = $1 AND topic = $2 AND partition = $3 AND published_offset < $4`,
    [groupId, topic, partition, str(upTo)],
  );
}
