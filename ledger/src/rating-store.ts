import type { Pool, PoolClient } from '@meterstream/platform/postgres';
import type { RatedEvent } from '@meterstream/schemas';
import { eventKey, type LedgerRow, type RatedBatch } from './core/rate.js';
import { deadLetterRecords, type DeadLetter } from './dead-letters.js';

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

/**
 * Writes a rated batch in one statement, whatever its size: the rows travel as JSON documents
 * (one native JSON.stringify each) that Postgres turns into records, and data-modifying CTEs
 * apply the ledger rows, grant balances, account states, postpaid accrual, the dead letters and
 * the offset together.
 */
export async function writeBatch(
  c: PoolClient, batch: RatedBatch, dead: readonly DeadLetter[],
  src: { groupId: string; topic: string; partition: number; nextOffset: string }, ratedAt: string,
): Promise<void> {
  const ledger = batch.rows.map((r) => ({
    account_id: r.accountId, event_id: r.eventId, seq: str(r.seq), product: r.product, quantity: str(r.quantity),
    unit: r.unit, unit_price: str(r.unitPrice), per: str(r.per), amount: str(r.amount), from_grants: str(r.fromGrants),
    postpaid: str(r.postpaid), overdraft: str(r.overdraft),
    grant_split: r.takes.map((t) => ({ grant_id: t.grantId, kind: t.kind, amount: str(t.amount) })),
    balance_after: str(r.balanceAfter), event_time: new Date(r.eventMs).toISOString(), rated_at: ratedAt,
    properties: r.properties ?? null, workspace_id: r.workspaceId ?? null, hold_id: r.holdId ?? null, src_topic: src.topic, src_partition: src.partition, src_offset: r.offset,
  }));
  const grants = [...batch.grantRemaining].map(([id, remaining]) => ({ id, remaining: str(remaining) }));
  const accounts = [...batch.changed.values()].map((s) => ({ id: s.id, overdraft: str(s.overdraft), seq: str(s.ledgerSeq) }));
  const postpaid = [...batch.postpaid].map(([k, amount]) => {
    const [id, month] = k.split('\u0000') as [string, string];
    return { id, month: `${month}-01`, amount: str(amount) };
  });
  await c.query(
    `WITH ledger AS (
       INSERT INTO usage_ledger SELECT * FROM json_populate_recordset(NULL::usage_ledger, $1::json)
     ), grant_updates AS (
       UPDATE grants g SET remaining = v.remaining
         FROM json_to_recordset($2::json) AS v(id text, remaining bigint) WHERE g.id = v.id
     ), account_updates AS (
       UPDATE accounts a SET overdraft = v.overdraft, ledger_seq = v.seq
         FROM json_to_recordset($3::json) AS v(id text, overdraft bigint, seq bigint) WHERE a.id = v.id
     ), postpaid_updates AS (
       INSERT INTO postpaid_usage (account_id, month, amount)
       SELECT id, month, amount FROM json_to_recordset($4::json) AS v(id text, month date, amount bigint)
       ON CONFLICT (account_id, month) DO UPDATE SET amount = postpaid_usage.amount + excluded.amount
     ), dead_letter_inserts AS (
       INSERT INTO dead_letters (src_topic, src_partition, src_offset, account_id, event_id, code, reason, msg_key, payload)
       SELECT $6, $7, src_offset, account_id, event_id, code, reason, decode(msg_key, 'base64'), decode(payload, 'base64')
         FROM json_to_recordset($9::json)
           AS v(src_offset bigint, account_id text, event_id text, code text, reason text, msg_key text, payload text)
       ON CONFLICT DO NOTHING
     )
     UPDATE consumer_offsets SET next_offset = $8 WHERE group_id = $5 AND topic = $6 AND partition = $7`,
    [JSON.stringify(ledger), JSON.stringify(grants), JSON.stringify(accounts), JSON.stringify(postpaid),
      src.groupId, src.topic, src.partition, src.nextOffset, JSON.stringify(deadLetterRecords(dead))],
  );
}

interface LedgerDbRow {
  account_id: string; event_id: string; seq: bigint; product: string; quantity: bigint; unit: string;
  unit_price: bigint; per: bigint; amount: bigint; from_grants: bigint; postpaid: bigint; overdraft: bigint;
  grant_split: { grant_id: string; kind: string; amount: string }[]; balance_after: bigint; event_time: Date;
  rated_at: Date; properties: Record<string, string> | null; workspace_id: string | null; hold_id: string | null; src_offset: bigint; currency: RatedEvent['currency'];
}

/**
 * Ledger rows a crashed rater committed from [from, to) of this partition but may not have
 * published. Looked up by the redelivered events' keys (the primary key), so the ledger needs no
 * index on its source offsets.
 */
export async function ledgerRowsFromSource(
  c: PoolClient, keys: readonly { account: string; event: string }[], topic: string, partition: number, from: bigint, to: bigint,
): Promise<{ row: LedgerRow; ratedAt: string }[]> {
  if (keys.length === 0) return [];
  const r = await c.query<LedgerDbRow>(
    `SELECT l.*, a.currency
       FROM unnest($1::text[], $2::text[]) AS k(account_id, event_id)
       JOIN usage_ledger l ON l.account_id = k.account_id AND l.event_id = k.event_id
       JOIN accounts a ON a.id = l.account_id
      WHERE l.src_topic = $3 AND l.src_partition = $4 AND l.src_offset >= $5 AND l.src_offset < $6
      ORDER BY l.src_offset`,
    [keys.map((k) => k.account), keys.map((k) => k.event), topic, partition, str(from), str(to)],
  );
  return r.rows.map((d) => ({
    ratedAt: d.rated_at.toISOString(),
    row: {
      accountId: d.account_id, eventId: d.event_id, product: d.product, quantity: d.quantity,
      properties: d.properties ?? undefined, workspaceId: d.workspace_id ?? undefined, ...(d.hold_id ? { holdId: d.hold_id } : {}), currency: d.currency, eventMs: d.event_time.getTime(),
      offset: str(d.src_offset), seq: d.seq, unit: d.unit, unitPrice: d.unit_price, per: d.per, amount: d.amount,
      fromGrants: d.from_grants, postpaid: d.postpaid, overdraft: d.overdraft,
      takes: d.grant_split.map((t) => ({ grantId: t.grant_id, kind: t.kind, amount: BigInt(t.amount) })),
      balanceAfter: d.balance_after,
    },
  }));
}

/**
 * Moves the fence over offsets Kafka holds but never hands out (transaction markers, aborted
 * records) when nothing else lies in between, i.e. the fence stands exactly at `from`; the
 * published offset follows when everything before was published. False when the fence was elsewhere.
 */
export async function skipUnreadable(c: Pool | PoolClient, groupId: string, topic: string, partition: number, from: bigint, to: bigint): Promise<boolean> {
  const r = await c.query(
    `UPDATE consumer_offsets
        SET next_offset = $5, published_offset = CASE WHEN published_offset = next_offset THEN $5 ELSE published_offset END
      WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4`,
    [groupId, topic, partition, str(from), str(to)],
  );
  return r.rowCount === 1;
}

/** Where rating stands on these partitions, for the ones that have a row. */
export async function publishedOffsets(c: Pool | PoolClient, groupId: string, topic: string, partitions: readonly number[]): Promise<Map<number, bigint>> {
  const r = await c.query<{ partition: number; published_offset: bigint }>(
    'SELECT partition, published_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])',
    [groupId, topic, partitions],
  );
  return new Map(r.rows.map((x) => [x.partition, x.published_offset]));
}

export async function markPublished(c: Pool | PoolClient, groupId: string, topic: string, partition: number, upTo: bigint): Promise<void> {
  await c.query(
    `UPDATE consumer_offsets SET published_offset = $4
      WHERE group_id = $1 AND topic = $2 AND partition = $3 AND published_offset < $4`,
    [groupId, topic, partition, str(upTo)],
  );
}
