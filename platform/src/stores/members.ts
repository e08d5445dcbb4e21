import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { MemberRole } from '@meterstream/schemas';
import { inTransaction, type Pool, type PoolClient } from '../postgres.js';
import { AccountNotFoundError } from './accounts.js';
import { queryRows, type Db } from './rows.js';

export class MemberNotFoundError extends Error {
  override readonly name = 'MemberNotFoundError';
}
/** The account already has a member of this email (case-insensitive, removed members aside). */
export class MemberExistsError extends Error {
  override readonly name = 'MemberExistsError';
}
/** The change would leave the account without an owner. */
export class LastOwnerError extends Error {
  override readonly name = 'LastOwnerError';
}
export class MemberRemovedError extends Error {
  override readonly name = 'MemberRemovedError';
}

/** A person of an account (migration 011); the owner's row is made with the account. */
export interface MemberRecord {
  id: string;
  accountId: string;
  email: string;
  role: MemberRole;
  createdAt: Date;
  removedAt: Date | null;
}

/** A member changed, and the hashes of its keys every key cache must forget (their role or their validity changed). */
export interface ChangedMember {
  member: MemberRecord;
  keyHashes: string[];
}

export const MemberRow = z
  .object({
    id: z.string(), account_id: z.string(), email: z.string(), role: MemberRole, created_at: z.date(), removed_at: z.date().nullable(),
  })
  .transform((r): MemberRecord => ({
    id: r.id, accountId: r.account_id, email: r.email, role: r.role, createdAt: r.created_at, removedAt: r.removed_at,
  }));

const COLUMNS = 'id, account_id, email, role, created_at, removed_at';

/** The account's members, oldest first; undefined when the account does not exist. */
export async function listMembers(db: Db, accountId: string, { includeRemoved = false } = {}): Promise<MemberRecord[] | undefined> {
  const members = await queryRows(db, 'members', MemberRow,
    `SELECT ${COLUMNS} FROM members WHERE account_id = $1 AND ($2 OR removed_at IS NULL) ORDER BY created_at, id`, [accountId, includeRemoved]);
  if (members.length > 0) return members;
  const { rows } = await db.query('SELECT 1 FROM accounts WHERE id = $1', [accountId]);
  return rows.length === 0 ? undefined : [];
}

export async function getMember(db: Db, accountId: string, memberId: string): Promise<MemberRecord> {
  const [member] = await queryRows(db, 'members', MemberRow, `SELECT ${COLUMNS} FROM members WHERE account_id = $1 AND id = $2`, [accountId, memberId]);
  if (!member) throw new MemberNotFoundError(`account ${accountId} has no member ${memberId}`);
  return member;
}

/** Adds a member; an email is one member of an account at a time, compared case-insensitively. */
export async function addMember(db: Db, accountId: string, input: { email: string; role: MemberRole }): Promise<MemberRecord> {
  try {
    const [member] = await queryRows(db, 'members', MemberRow,
      `INSERT INTO members (id, account_id, email, role) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
      [`mem_${randomBytes(12).toString('hex')}`, accountId, input.email, input.role]);
    return member!;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === '23503') throw new AccountNotFoundError(accountId);
    if (code === '23505') throw new MemberExistsError(`account ${accountId} already has a member ${input.email}`);
    throw e;
  }
}

/**
 * Gives the member a new role; its keys act with it at once, on every instance: their rows are
 * touched so that api_keys_changed (migration 004) evicts them from every key cache.
 */
export async function changeMemberRole(pool: Pool, accountId: string, memberId: string, role: MemberRole): Promise<ChangedMember> {
  return inTransaction(pool, async (c) => {
    const member = await lockForChange(c, accountId, memberId, role === 'owner' ? null : 'demote');
    const [changed] = await queryRows(c, 'members', MemberRow,
      `UPDATE members SET role = $2 WHERE id = $1 RETURNING ${COLUMNS}`, [member.id, role]);
    const keys = await c.query<{ key_hash: string }>(
      'UPDATE api_keys SET member_id = member_id WHERE member_id = $1 AND revoked_at IS NULL RETURNING key_hash', [member.id]);
    return { member: changed!, keyHashes: keys.rows.map((r) => r.key_hash) };
  });
}

/**
 * Removes the member and revokes its keys in one transaction (api_keys_changed evicts them
 * everywhere on commit). Idempotent: removing a removed member answers its removal.
 */
export async function removeMember(pool: Pool, accountId: string, memberId: string): Promise<ChangedMember> {
  return inTransaction(pool, async (c) => {
    const member = await lockForChange(c, accountId, memberId, 'remove');
    if (member.removedAt) return { member, keyHashes: [] };
    const [removed] = await queryRows(c, 'members', MemberRow,
      `UPDATE members SET removed_at = now() WHERE id = $1 RETURNING ${COLUMNS}`, [member.id]);
    const keys = await c.query<{ key_hash: string }>(
      'UPDATE api_keys SET revoked_at = now() WHERE member_id = $1 AND revoked_at IS NULL RETURNING key_hash', [member.id]);
    return { member: removed!, keyHashes: keys.rows.map((r) => r.key_hash) };
  });
}

/**
 * Locks the account's live members (so that two concurrent changes cannot each remove one of the
 * last two owners) and refuses a change that leaves no owner.
 */
async function lockForChange(c: PoolClient, accountId: string, memberId: string, change: 'demote' | 'remove' | null): Promise<MemberRecord> {
  const live = await queryRows(c, 'members', MemberRow,
    `SELECT ${COLUMNS} FROM members WHERE account_id = $1 AND removed_at IS NULL ORDER BY id FOR UPDATE`, [accountId]);
  const member = live.find((m) => m.id === memberId);
  if (!member) {
    const removed = await getMember(c, accountId, memberId);
    if (change === 'remove') return removed;
    throw new MemberRemovedError(`member ${memberId} was removed at ${removed.removedAt!.toISOString()}`);
  }
  if (change !== null && member.role === 'owner' && live.filter((m) => m.role === 'owner').length === 1) {
    throw new LastOwnerError(`member ${memberId} is the account's only owner: make another member owner first`);
  }
  return member;
}
