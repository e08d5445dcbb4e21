import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ApiKeyKind, MemberRole } from '@meterstream/schemas';
import { inTransaction, type Pool } from '../postgres.js';
import { AccountNotFoundError } from './accounts.js';
import { MemberNotFoundError } from './members.js';
import { TenantNotFoundError } from './tenants.js';
import { queryRows, type Db } from './rows.js';

/** Every key starts with it, so that a lookup can skip anything else without Postgres. */
export const API_KEY_PREFIX = 'msk_';

/** Only this digest of a key is stored (migration 002): a leaked table holds no working key. */
export const hashApiKey = (key: string): Buffer => createHash('sha256').update(key).digest();

export class KeyNotFoundError extends Error {
  override readonly name = 'KeyNotFoundError';
}
export class KeyRevokedError extends Error {
  override readonly name = 'KeyRevokedError';
}

/** Whose key it is (migration 011): a member of an account, an account's service, or a tenant's service. */
export type KeyHolder =
  | { kind: 'member'; accountId: string; memberId: string }
  | { kind: 'service'; accountId: string }
  | { kind: 'service'; tenantId: string };

/** Where a key is named by the routes: under its account or under its tenant. */
export type KeyScope = { accountId: string } | { tenantId: string };

/** A key as its routes show it: never the key itself, which is shown once, at creation. */
export interface ApiKeyRecord {
  id: string;
  kind: ApiKeyKind;
  accountId: string | null;
  tenantId: string | null;
  memberId: string | null;
  /** A member key's role now: it follows its member's. */
  role: MemberRole | null;
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

/** Who a working key acts for, as the authentication needs it. */
export type KeyOwner =
  | { kind: 'member'; keyId: string; accountId: string; memberId: string; role: MemberRole }
  | { kind: 'service'; keyId: string; accountId: string }
  | { kind: 'tenant'; keyId: string; tenantId: string };

const KeyColumns = z.object({
  id: z.string().regex(/^key_[0-9a-f]{24}$/),
  kind: ApiKeyKind,
  account_id: z.string().nullable(),
  tenant_id: z.string().nullable(),
  member_id: z.string().nullable(),
  role: MemberRole.nullable(),
  created_at: z.date(),
  revoked_at: z.date().nullable(),
});
const toRecord = (r: z.output<typeof KeyColumns>): ApiKeyRecord => ({
  id: r.id, kind: r.kind, accountId: r.account_id, tenantId: r.tenant_id, memberId: r.member_id, role: r.role,
  createdAt: r.created_at, revokedAt: r.revoked_at,
});
/** A row of api_keys joined with its member's role, without its hash, parsed into the domain type. */
export const ApiKeyRow = KeyColumns.transform(toRecord);
const ChangedKeyRow = KeyColumns.extend({ key_hash: z.string().regex(/^[0-9a-f]{64}$/) })
  .transform((r): ChangedApiKey => ({ record: toRecord(r), keyHash: r.key_hash }));
const OwnerRow = KeyColumns.pick({ id: true, kind: true, account_id: true, tenant_id: true, member_id: true, role: true })
  .transform((r): KeyOwner => {
    if (r.tenant_id !== null) return { kind: 'tenant', keyId: r.id, tenantId: r.tenant_id };
    if (r.kind === 'service') return { kind: 'service', keyId: r.id, accountId: r.account_id! };
    return { kind: 'member', keyId: r.id, accountId: r.account_id!, memberId: r.member_id!, role: r.role! };
  });

const KEY_FIELDS = 'k.id, k.kind, k.account_id, k.tenant_id, k.member_id, m.role, k.created_at, k.revoked_at';
/** The keys with their members' roles; `keys` is a table or the name of a CTE of api_keys rows. */
const withRoles = (keys: string, extra = '') => `SELECT ${KEY_FIELDS}${extra} FROM ${keys} k LEFT JOIN members m ON m.id = k.member_id`;
const scopeColumn = (scope: KeyScope): [string, string] => ('tenantId' in scope ? ['tenant_id', scope.tenantId] : ['account_id', scope.accountId]);
const describeScope = (scope: KeyScope) => ('tenantId' in scope ? `tenant ${scope.tenantId}` : `account ${scope.accountId}`);

/** Creates a key for the holder; run it inside the transaction that must include it. */
export async function issueKey(db: Db, holder: KeyHolder): Promise<IssuedApiKey> {
  const apiKey = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  const id = `key_${randomBytes(12).toString('hex')}`;
  const hash = hashApiKey(apiKey).toString('hex');
  const insert = holder.kind === 'member'
    // Only a member of this account who was not removed can hold a key.
    ? ["INSERT INTO api_keys (id, key_hash, kind, account_id, member_id) SELECT $1, $2, 'member', account_id, id FROM members WHERE id = $3 AND account_id = $4 AND removed_at IS NULL",
      [id, hash, holder.memberId, holder.accountId]] as const
    : 'tenantId' in holder
      ? ["INSERT INTO api_keys (id, key_hash, kind, tenant_id) VALUES ($1, $2, 'service', $3)", [id, hash, holder.tenantId]] as const
      : ["INSERT INTO api_keys (id, key_hash, kind, account_id) VALUES ($1, $2, 'service', $3)", [id, hash, holder.accountId]] as const;
  try {
    const [record] = await queryRows(db, 'api_keys', ApiKeyRow, `WITH k AS (${insert[0]} RETURNING *) ${withRoles('k')}`, insert[1]);
    // Only the member insert selects its row: no row, no live member of that id in the account.
    if (!record) throw new MemberNotFoundError(holder.kind === 'member' ? `account ${holder.accountId} has no member ${holder.memberId}` : 'no key holder');
    return { record, apiKey };
  } catch (e) {
    if ((e as { code?: string }).code === '23503') {
      if ('tenantId' in holder) throw new TenantNotFoundError(`tenant ${holder.tenantId} does not exist`);
      throw new AccountNotFoundError(holder.accountId);
    }
    throw e;
  }
}

/**
 * A member key of the account's owner (its first, if it has several): the key POST /v1/accounts
 * returns, and what POST /v1/accounts/{id}/keys issues without a body.
 */
export async function issueApiKey(db: Db, accountId: string): Promise<IssuedApiKey> {
  const [account] = await queryRows(db, 'members', z.object({ owner: z.string().nullable() }),
    `SELECT (SELECT id FROM members WHERE account_id = a.id AND role = 'owner' AND removed_at IS NULL ORDER BY created_at, id LIMIT 1) AS owner
       FROM accounts a WHERE a.id = $1`, [accountId]);
  if (!account) throw new AccountNotFoundError(accountId);
  // An account provisioned on first use has no owner until the operator adds one.
  if (!account.owner) throw new MemberNotFoundError(`account ${accountId} has no owner: add one with POST /v1/accounts/${accountId}/members`);
  return issueKey(db, { kind: 'member', accountId, memberId: account.owner });
}

/** Who holds the key of this hash (hex); undefined when no such key works. */
export async function findKeyOwner(db: Db, keyHash: string): Promise<KeyOwner | undefined> {
  const [owner] = await queryRows(db, 'api_keys', OwnerRow,
    // A closed account's and a removed member's keys were revoked with them; the joins make sure of it.
    `SELECT k.id, k.kind, k.account_id, k.tenant_id, k.member_id, m.role
       FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id LEFT JOIN members m ON m.id = k.member_id
      WHERE k.key_hash = $1 AND k.revoked_at IS NULL
        AND (k.account_id IS NULL OR a.closed_at IS NULL) AND (k.member_id IS NULL OR m.removed_at IS NULL)`, [keyHash]);
  return owner;
}

/** The account's or tenant's keys, revoked ones included, oldest first; undefined when it does not exist. */
export async function listApiKeys(db: Db, scope: KeyScope): Promise<ApiKeyRecord[] | undefined> {
  const [column, id] = scopeColumn(scope);
  const table = column === 'tenant_id' ? 'tenants' : 'accounts';
  const { rows } = await db.query<{ found: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${table} WHERE id = $1) AS found`, [id]);
  if (!rows[0]!.found) return undefined;
  return queryRows(db, 'api_keys', ApiKeyRow, `${withRoles('api_keys')} WHERE k.${column} = $1 ORDER BY k.created_at, k.id`, [id]);
}

/** One key of the account or tenant, revoked or not. */
export async function getApiKey(db: Db, scope: KeyScope, keyId: string): Promise<ApiKeyRecord> {
  const [column, id] = scopeColumn(scope);
  const [key] = await queryRows(db, 'api_keys', ApiKeyRow, `${withRoles('api_keys')} WHERE k.${column} = $1 AND k.id = $2`, [id, keyId]);
  if (!key) throw new KeyNotFoundError(`${describeScope(scope)} has no key ${keyId}`);
  return key;
}

/** Idempotent: revoking a revoked key answers its first revocation. */
export async function revokeApiKey(db: Db, scope: KeyScope, keyId: string): Promise<ChangedApiKey> {
  const [column, id] = scopeColumn(scope);
  const [revoked] = await queryRows(db, 'api_keys', ChangedKeyRow,
    `WITH k AS (UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE ${column} = $1 AND id = $2 RETURNING *)
     ${withRoles('k', ', k.key_hash')}`,
    [id, keyId]);
  if (!revoked) throw new KeyNotFoundError(`${describeScope(scope)} has no key ${keyId}`);
  return revoked;
}

/**
 * A new key for the same holder and the old one revoked, in one transaction; a revoked key
 * cannot be rotated, nor the key of a removed member.
 */
export async function rotateApiKey(pool: Pool, scope: KeyScope, keyId: string): Promise<{ revoked: ChangedApiKey; created: IssuedApiKey }> {
  const [column, id] = scopeColumn(scope);
  return inTransaction(pool, async (c) => {
    const [old] = await queryRows(c, 'api_keys', ChangedKeyRow,
      `WITH k AS (SELECT * FROM api_keys WHERE ${column} = $1 AND id = $2 FOR UPDATE) ${withRoles('k', ', k.key_hash')}`, [id, keyId]);
    if (!old) throw new KeyNotFoundError(`${describeScope(scope)} has no key ${keyId}`);
    if (old.record.revokedAt) {
      throw new KeyRevokedError(`key ${keyId} was revoked at ${old.record.revokedAt.toISOString()}; create a new key instead`);
    }
    const created = await issueKey(c, holderOf(old.record));
    const revoked = await revokeApiKey(c, scope, keyId);
    return { revoked, created };
  });
}

function holderOf(k: ApiKeyRecord): KeyHolder {
  if (k.tenantId !== null) return { kind: 'service', tenantId: k.tenantId };
  if (k.kind === 'service') return { kind: 'service', accountId: k.accountId! };
  return { kind: 'member', accountId: k.accountId!, memberId: k.memberId! };
}
