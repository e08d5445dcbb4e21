import { toMicros, type PriceInput } from '@meterstream/schemas';
import type { Pool } from '@meterstream/platform/postgres';
import { priceSetting, upsertPrice } from '@meterstream/platform/stores/prices';
import { PRICE_LIST } from './workload.js';

export interface SeededAccount {
  id: string;
  billingMode: 'prepaid' | 'postpaid';
}

export async function setPrices(pool: Pool, prices: Record<string, PriceInput> = PRICE_LIST): Promise<void> {
  for (const [product, p] of Object.entries(prices)) await upsertPrice(pool, product, priceSetting(p));
}

export const accountId = (i: number): string => `acct-${String(i).padStart(6, '0')}`;
export const accountIndex = (id: string): number => (/^acct-(\d{6})$/.test(id) ? Number(id.slice(5)) : -1);

export interface GrantPlan {
  gift: { id: string; amount: bigint; expiresAt: number };
  purchased: { id: string; amount: bigint };
  billingMode: 'prepaid' | 'postpaid';
}

/** The grants account i starts with; verification replays the usage against exactly this. */
export function grantPlan(i: number, giftExpiryMidMs: number, giftExpiryLateMs: number): GrantPlan {
  const id = accountId(i);
  return {
    gift: { id: `${id}-gift`, amount: toMicros(1 + (i % 10)), expiresAt: i % 2 === 0 ? giftExpiryMidMs : giftExpiryLateMs },
    purchased: { id: `${id}-purchased`, amount: toMicros(10 + (i % 50)) },
    billingMode: i % 3 === 2 ? 'postpaid' : 'prepaid',
  };
}

/**
 * Accounts in bulk, each with a gift that expires and a purchased grant that does not; every third
 * account is postpaid. Half of the gifts expire in the middle of the main workload's time window,
 * so that the same account's early events burn the gift and its later ones must not. Written with
 * a few set-based statements (what addGrant does one transaction at a time), ledger_seq included.
 */
export async function seedAccounts(pool: Pool, n: number, giftExpiryMidMs: number, giftExpiryLateMs: number): Promise<SeededAccount[]> {
  const accounts: SeededAccount[] = [];
  const ids: string[] = [];
  const modes: string[] = [];
  for (let i = 0; i < n; i++) {
    const a: SeededAccount = { id: accountId(i), billingMode: grantPlan(i, 0, 0).billingMode };
    accounts.push(a);
    ids.push(a.id);
    modes.push(a.billingMode);
  }
  const CHUNK = 5000;
  for (let off = 0; off < n; off += CHUNK) {
    const idc = ids.slice(off, off + CHUNK);
    await pool.query(
      `INSERT INTO accounts (id, email, currency, billing_mode, ledger_seq)
       SELECT id, id || '@bench.example', 'USD', mode, 2 FROM unnest($1::text[], $2::text[]) AS v(id, mode)`,
      [idc, modes.slice(off, off + CHUNK)],
    );
    const gIds: string[] = [];
    const gAcc: string[] = [];
    const gKind: string[] = [];
    const gAmt: string[] = [];
    const gExp: (string | null)[] = [];
    idc.forEach((id, k) => {
      const plan = grantPlan(off + k, giftExpiryMidMs, giftExpiryLateMs);
      gIds.push(plan.gift.id, plan.purchased.id);
      gAcc.push(id, id);
      gKind.push('gift', 'purchased');
      gAmt.push(plan.gift.amount.toString(), plan.purchased.amount.toString());
      gExp.push(new Date(plan.gift.expiresAt).toISOString(), null);
    });
    await pool.query(
      `INSERT INTO grants (id, account_id, kind, amount, remaining, expires_at, priority)
       SELECT id, acc, kind, amt, amt, exp, 100
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[]) WITH ORDINALITY AS v(id, acc, kind, amt, exp, ord)
        ORDER BY ord`,
      [gIds, gAcc, gKind, gAmt, gExp],
    );
  }
  return accounts;
}
