import { createHmac } from 'node:crypto';
import type { Db } from './rows.js';

/**
 * The form of an address the signup gift is counted per: surrounding white space removed and
 * lower-cased (the whole address, local part included). Nothing else: no Gmail dot or +tag
 * folding, no Unicode or IDN normalization (README, "Signup gift").
 */
export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

/** The tombstone of an address: HMAC-SHA256 under EMAIL_TOMBSTONE_KEY of its normalized form. */
export const emailTombstone = (email: string, key: string): Buffer => createHmac('sha256', key).update(normalizeEmail(email)).digest();

/**
 * Claims the address's signup gift for the account: true when no account claimed it before. Run
 * it in the transaction that grants the gift: a concurrent claim of the same address waits on the
 * primary key until this one commits (then gets false) or rolls back (then gets true).
 */
export async function claimSignupGift(db: Db, tombstone: Buffer, accountId: string): Promise<boolean> {
  const r = await db.query(
    'INSERT INTO email_tombstones (email_hmac, account_id) VALUES ($1, $2) ON CONFLICT (email_hmac) DO NOTHING', [tombstone, accountId]);
  return r.rowCount === 1;
}
