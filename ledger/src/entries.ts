import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { PoolClient } from '@meterstream/platform/postgres';
import { queryRows, type Db } from '@meterstream/platform/stores/rows';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import type { serialSender } from '@meterstream/platform/kafka';
import { Currency, formatMicros, LedgerEntry, LedgerEntryKind } from '@meterstream/schemas';

/** A money movement a command records; recordEntries gives it its id (unless set) and seq. */
export interface NewLedgerEntry {
  account_id: string;
  kind: LedgerEntryKind;
  /** Signed micro-units: positive adds credits. */
  amount: bigint;
  currency: Currency;
  grant_id: string | null;
  overdraft_paid: bigint;
  balance_after: bigint;
  reason?: string | null;
  idempotency_key: string;
  /** Tells a retry of the same request from the same key reused for another request. */
  request_hash: string;
  entry_id?: string;
}

/** An idempotency key sent again with a different request: the caller's mistake (HTTP 409). */
export class IdempotencyConflictError extends Error {
  override readonly name = 'IdempotencyConflictError';
  constructor(readonly accountId: string, readonly idempotencyKey: string) {
    super(`idempotency key ${JSON.stringify(idempotencyKey)} was already used for a different request on account ${accountId}`);
  }
}

/** Where an entry is: its primary key. */
export type EntryKey = Pick<LedgerEntry, 'account_id' | 'entry_id'>;

/** What Postgres returns for ledger_entries (int8 as bigint, see platform/postgres), checked as read. */
const EntryRow = z.object({
  account_id: z.string(),
  entry_id: z.string(),
  seq: z.bigint(),
  kind: LedgerEntryKind,
  amount: z.bigint(),
  currency: Currency,
  grant_id: z.string().nullable(),
  overdraft_paid: z.bigint(),
  balance_after: z.bigint(),
  reason: z.string().nullable(),
  idempotency_key: z.string(),
  request_hash: z.string(),
  created_at: z.date(),
});
type EntryRow = z.infer<typeof EntryRow>;

const ENTRY_COLUMNS = `account_id, entry_id, seq, kind, amount, currency, grant_id, overdraft_paid, balance_after, reason,
  idempotency_key, request_hash, created_at`;

/** The one mapping from a ledger_entries row to the contract. */
export function toLedgerEntry(row: EntryRow): LedgerEntry {
  return {
    entry_id: row.entry_id,
    account_id: row.account_id,
    seq: Number(row.seq),
    kind: row.kind,
    amount: formatMicros(row.amount),
    currency: row.currency,
    grant_id: row.grant_id,
    overdraft_paid: formatMicros(row.overdraft_paid),
    balance_after: formatMicros(row.balance_after),
    reason: row.reason,
    idempotency_key: row.idempotency_key,
    created_at: row.created_at.toISOString(),
  };
}

/** The entry an idempotency key produced on the account, if any. */
export async function findEntry(db: Db, accountId: string, idempotencyKey: string): Promise<LedgerEntry | undefined> {
  const [row] = await queryRows(db, 'ledger_entries', EntryRow,
    `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE account_id = $1 AND idempotency_key = $2`, [accountId, idempotencyKey]);
  return row && toLedgerEntry(row);
}

/**
 * Records money movements inside the caller's transaction, after the movement itself (the grant
 * row, the overdraft) is written. Each new entry takes the account's next ledger seq, and
 * accounts.ledger_seq is moved to the last one here, so a command never bumps it itself. An
 * idempotency key already recorded for the same request returns the stored entry and takes no
 * seq; for a different request it throws IdempotencyConflictError. A command whose effects must
 * not repeat looks its key up with findEntry first (under the account lock) and stops there.
 * Returns the entries in the order given.
 */
export async function recordEntries(c: PoolClient, entries: readonly NewLedgerEntry[]): Promise<LedgerEntry[]> {
  if (entries.length === 0) return [];
  const accountIds = [...new Set(entries.map((e) => e.account_id))].sort();
  // Locked in id order, as loadAccountStates does, so writers never deadlock; a caller holding the lock already passes straight through.
  const locked = await c.query<{ id: string; ledger_seq: bigint }>(
    'SELECT id, ledger_seq FROM accounts WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE', [accountIds],
  );
  const seqs = new Map(locked.rows.map((r) => [r.id, r.ledger_seq]));
  const missing = accountIds.filter((id) => !seqs.has(id));
  if (missing.length > 0) throw new AccountNotFoundError(missing[0]!);

  const keyOf = (accountId: string, key: string) => `${accountId}\u0000${key}`;
  const found = await queryRows(c, 'ledger_entries', EntryRow,
    `SELECT ${ENTRY_COLUMNS} FROM ledger_entries
      WHERE (account_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [entries.map((e) => e.account_id), entries.map((e) => e.idempotency_key)]);
  const stored = new Map(found.map((r) => [keyOf(r.account_id, r.idempotency_key), r]));

  // The request hash of every key seen so far, stored or in this call.
  const hashes = new Map([...stored].map(([key, r]) => [key, r.request_hash]));
  const fresh: (NewLedgerEntry & { entry_id: string; seq: bigint })[] = [];
  for (const e of entries) {
    const key = keyOf(e.account_id, e.idempotency_key);
    const earlier = hashes.get(key);
    if (earlier !== undefined) {
      if (earlier !== e.request_hash) throw new IdempotencyConflictError(e.account_id, e.idempotency_key);
      continue;
    }
    hashes.set(key, e.request_hash);
    const seq = seqs.get(e.account_id)! + 1n;
    seqs.set(e.account_id, seq);
    fresh.push({ ...e, entry_id: e.entry_id ?? randomUUID(), seq });
  }

  if (fresh.length > 0) {
    const values = fresh.map((e) => ({
      account_id: e.account_id, entry_id: e.entry_id, seq: e.seq.toString(), kind: e.kind, amount: e.amount.toString(),
      currency: e.currency, grant_id: e.grant_id, overdraft_paid: e.overdraft_paid.toString(),
      balance_after: e.balance_after.toString(), reason: e.reason ?? null, idempotency_key: e.idempotency_key, request_hash: e.request_hash,
    }));
    const inserted = await queryRows(c, 'ledger_entries', EntryRow,
      `INSERT INTO ledger_entries (account_id, entry_id, seq, kind, amount, currency, grant_id, overdraft_paid, balance_after, reason,
                                   idempotency_key, request_hash)
       SELECT account_id, entry_id, seq, kind, amount, currency, grant_id, overdraft_paid, balance_after, reason, idempotency_key, request_hash
         FROM json_to_recordset($1::json) AS v(account_id text, entry_id text, seq bigint, kind text, amount bigint, currency text,
              grant_id text, overdraft_paid bigint, balance_after bigint, reason text, idempotency_key text, request_hash text)
       RETURNING ${ENTRY_COLUMNS}`,
      [JSON.stringify(values)]);
    for (const r of inserted) stored.set(keyOf(r.account_id, r.idempotency_key), r);
    const bumped = [...new Set(fresh.map((e) => e.account_id))].map((id) => ({ id, seq: seqs.get(id)!.toString() }));
    await c.query(
      `UPDATE accounts a SET ledger_seq = v.seq FROM json_to_recordset($1::json) AS v(id text, seq bigint) WHERE a.id = v.id`,
      [JSON.stringify(bumped)],
    );
  }
  return entries.map((e) => toLedgerEntry(stored.get(keyOf(e.account_id, e.idempotency_key))!));
}

/** A serialSender (platform/kafka): acks=all, one request at a time. */
export type Send = ReturnType<typeof serialSender>;

/**
 * Publishes committed entries on ledger.entries, keyed by account (one account's entries stay on
 * one partition). Only after the commit: a consumer must never see a movement Postgres does not
 * hold. Consumers order an account's history by seq, not by offset: the sweep may publish an
 * entry after a newer one, and a crash may publish one twice.
 */
export async function publishEntries(send: Send, topic: string, entries: readonly LedgerEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await send({ topic, acks: -1, messages: entries.map((e) => ({ key: e.account_id, value: JSON.stringify(e) })) });
}

/** Records that the entries reached ledger.entries, so the sweep leaves them alone. */
export async function markEntriesPublished(db: Db, keys: readonly EntryKey[]): Promise<void> {
  if (keys.length === 0) return;
  await db.query(
    `UPDATE ledger_entries SET published_at = now()
      WHERE (account_id, entry_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND published_at IS NULL`,
    [keys.map((k) => k.account_id), keys.map((k) => k.entry_id)],
  );
}

/**
 * Entries committed at least olderThanMs ago (by the database's clock, which stamped them) and not
 * published yet: the ones a crash or a Kafka outage left between commit and publish. The age keeps
 * the sweep off entries whose command is publishing them right now.
 */
export async function unpublishedEntries(db: Db, olderThanMs: number, limit: number): Promise<LedgerEntry[]> {
  const rows = await queryRows(db, 'ledger_entries', EntryRow,
    `SELECT ${ENTRY_COLUMNS} FROM ledger_entries
      WHERE published_at IS NULL AND created_at <= now() - make_interval(secs => $1::double precision / 1000)
      ORDER BY created_at, account_id, seq
      LIMIT $2`,
    [olderThanMs, limit]);
  return rows.map(toLedgerEntry);
}

/** One round of the sweep: publishes up to `limit` forgotten entries and marks them. Returns how many. */
export async function sweepUnpublishedEntries(
  db: Db,
  send: Send,
  topic: string,
  opts: { olderThanMs: number; limit: number },
): Promise<number> {
  const entries = await unpublishedEntries(db, opts.olderThanMs, opts.limit);
  await publishEntries(send, topic, entries);
  await markEntriesPublished(db, entries);
  return entries.length;
}
