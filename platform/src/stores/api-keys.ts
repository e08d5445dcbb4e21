import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { inTransaction, type Pool } from '../postgres.js';
import { AccountNotFoundError } from './accounts.js';
import { queryRows, type Db } from './rows.js';

/** Every account key starts with it, so that a lookup can skip anything else without Postgres. */
export const API_KEY_PREFIX = 'msk_';

/** Only this digest of a key is stored (migration 002): a leaked table holds no working key. */
export const hashApiKey = (key: string): Buffer => createHash('sha256').update(key).digest();

export class KeyNotFoundError extends Error {
  override readonly name = 'KeyNotFoundError';
}
export class KeyRevokedError extends Error {
  override readonly name = 'KeyRevokedError';
}

/** A key as its routes show it: never the key itself, which is shown once, at creation. */
export interface ApiKeyRecord {
  id: string;
  accountId: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** A key just created: `apiKey` exists only here, Postgres keeps its hash. */
export interface IssuedApiKey {
  record: ApiKeyRecord;
  apiKey: string;
}

/** What a change to a key must evict from every cache: its hash (the cache key). */
export interface ChangedApiKey {
  record: ApiKeyRecord;
  keyHash: string;
}

export interface KeyOwner {
  accountId: string;
  keyId: string;
}

const toRecord = (r: { id: string; account_id: string; created_at: Date; revoked_at: Date | null }): ApiKeyRecord => ({
  id: r.id, accountId: r.account_id, createdAt: r.created_at, revokedAt: r.revoked_at,
});

const KeyColumns = z.object({
  id: z.string().regex(/^key_[0-9a-f]{24}$/), account_id: z.string(), created_at: z.date(), revoked_at: z.date().nullable(),
});
/** A row of api_keys as pg returns it, without its hash, parsed into the domain type. */
export const ApiKeyRow = KeyColumns.transform(toRecord);
const ChangedKeyRow = KeyColumns.extend({ key_hash: z.string().regex(/^[0-9a-f]{64}$/) })
  .transform((r): ChangedApiKey => ({ record: toRecord(r), keyHash: r.key_hash }));
// The account's row joined with its keys: an account without keys gives one row of nulls.
const AccountKeyRow = z.union([ApiKeyRow, z.object({ id: z.null() }).transform(() => null)]);
const OwnerRow = z.object({ account_id: z.string(), id: z.string() }).transform((r): KeyOwner => ({ accountId: r.account_id, keyId: r.id }));

const COLUMNS = 'id, account_id, created_at, revoked_at';

/** Creates a key for the account; run it inside the transaction that must include it. */
export async function issueApiKey(db: Db, accountId: string): Promise<IssuedApiKey> {
  const apiKey = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  try {
    const [record] = await queryRows(db, 'api_keys', ApiKeyRow,
      `INSERT INTO api_keys (id, key_hash, account_id, kind, member_id)
       VALUES ($1, $2, $3, 'member', (SELECT id FROM members WHERE account_id = $3 AND role = 'owner' AND removed_at IS NULL))
       RETURNING ${COLUMNS}`,
      [`key_${randomBytes(12).toString('hex')}`, hashApiKey(apiKey).toString('hex'), accountId]);
    return { record: record!, apiKey };
  } catch (e) {
    if ((e as { code?: string }).code === '23503') throw new AccountNotFoundError(accountId);
    throw e;
  }
}

/** Who holds the key of this hash (hex); undefined when no such key works. */
export async function findKeyOwner(db: Db, keyHash: string): Promise<KeyOwner | undefined> {
  const [owner] = await queryRows(db, 'api_keys', OwnerRow,
    // A closed account's keys were revoked with it; the join makes sure of it.
    `SELECT k.account_id, k.id FROM api_keys k JOIN accounts a ON a.id = k.account_id
      WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND a.closed_at IS NULL`, [keyHash]);
  return owner;
}

/** The account's keys, revoked ones included, oldest first; undefined when the account does not exist. */
export async function listApiKeys(db: Db, accountId: string): Promise<ApiKeyRecord[] | undefined> {
  const rows = await queryRows(db, 'api_keys', AccountKeyRow,
    `SELECT k.id, k.account_id, k.created_at, k.revoked_at
       FROM accounts a LEFT JOIN api_keys k ON k.account_id = a.id
      WHERE a.id = $1 ORDER BY k.created_at, k.id`,
    [accountId]);
  if (rows.length === 0) return undefined;
  return rows.filter((r) => r !== null);
}

/** Idempotent: revoking a revoked key answers its first revocation. */
export async function revokeApiKey(db: Db, accountId: string, keyId: string): Promise<ChangedApiKey> {
  const [revoked] = await queryRows(db, 'api_keys', ChangedKeyRow,
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE account_id = $1 AND id = $2
     RETURNING ${COLUMNS}, key_hash`,
    [accountId, keyId]);
  if (!revoked) throw new KeyNotFoundError(`account ${accountId} has no key ${keyId}`);
  return revoked;
}

/** A new key for the account and the old one revoked, in one transaction; a revoked key cannot be rotated. */
export async function rotateApiKey(pool: Pool, accountId: string, keyId: string): Promise<{ revoked: ChangedApiKey; created: IssuedApiKey }> {
  return inTransaction(pool, async (c) => {
    const [old] = await queryRows(c, 'api_keys', ChangedKeyRow,
      `SELECT ${COLUMNS}, key_hash FROM api_keys WHERE account_id = $1 AND id = $2 FOR UPDATE`, [accountId, keyId]);
    if (!old) throw new KeyNotFoundError(`account ${accountId} has no key ${keyId}`);
    if (old.record.revokedAt) {
      throw new KeyRevokedError(`key ${keyId} was revoked at ${old.record.revokedAt.toISOString()}; create a new key instead`);
    }
    const [revoked] = await queryRows(c, 'api_keys', ChangedKeyRow,
      `UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1 RETURNING ${COLUMNS}, key_hash`, [old.keyHash]);
    return { revoked: revoked!, created: await issueApiKey(c, accountId) };
  });
}
