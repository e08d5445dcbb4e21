import { randomUUID } from 'node:crypto';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { upsertPlan, type PlanSettings } from '@meterstream/platform/stores/plans';
import { balanceAt, loadAccountStates } from '@meterstream/ledger/account-state';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder, type FaultInjection } from '@meterstream/ledger/write-order';
import { activateAddon } from '@meterstream/ledger/commands/activate-addon';
import { addonKey, chargeAddons } from '@meterstream/ledger/commands/charge-addons';
import { deactivateAddon } from '@meterstream/ledger/commands/deactivate-addon';
import { addGrant } from '@meterstream/ledger/commands/add-grant';
import { toMicros } from '@meterstream/schemas';
import { createAccount } from '../../../tests/support/fixtures.js';
import type { TestStack } from '../../../tests/support/stack.js';
import { describe, expect, test } from '../../../tests/support/test.js';

const log = createLogger('addons-test', 'silent');
const at = (iso: string) => Date.parse(iso);
const ADDON = 'voice-cloning';

/** A prepaid USD plan of its own offering voice cloning at `price` a month. */
async function planWithAddon(stack: TestStack, over: Partial<PlanSettings> & { price?: string } = {}): Promise<string> {
  const { plan } = await upsertPlan(stack.pool, {
    id: `addons-${randomUUID()}`, name: 'Add-on plan', currency: 'USD', billingMode: 'prepaid', signupGiftAmount: 0n, signupGiftValidityDays: 7,
    monthlyAllowanceAmount: 0n, allowanceRolloverMonths: 2, defaultMonthlyLimit: null, lowBalanceThreshold: 0n,
    addons: [{ id: ADDON, name: 'Voice cloning', monthlyPrice: toMicros(over.price ?? '3') }], addonShortfall: 'overdraft', ...over,
  });
  return plan.id;
}

async function onPlan(stack: TestStack, planId: string, grants: Parameters<typeof createAccount>[2] = []): Promise<string> {
  const id = await createAccount(stack, {}, grants);
  await stack.pool.query('UPDATE accounts SET plan_id = $2 WHERE id = $1', [id, planId]);
  return id;
}

/** The write order a scheduler or the API runs, on the test's clock; `fault` stops it like a crash. */
function orderOn(stack: TestStack, clock: TestClock, fault?: FaultInjection): { order: WriteOrder; close: () => void } {
  const cache = new CacheWriter(stack.cache, stack.pool, log);
  const order = new WriteOrder({ pool: stack.pool, send: () => Promise.resolve(), cache, topics: stack.topics, log, now: () => clock.now(), fault });
  return { order, close: () => cache.stop() };
}

const addonEntries = async (stack: TestStack, account: string) => (await stack.pool.query<{ key: string; amount: bigint; balance_after: bigint }>(
  `SELECT idempotency_key AS key, amount, balance_after FROM ledger_entries WHERE account_id = $1 AND kind = 'addon' ORDER BY seq`, [account])).rows;

const notices = async (stack: TestStack, account: string) => (await stack.pool.query<{ type: string; month: string; entry: string | null; balance: string }>(
  `SELECT type, payload->'data'->>'month' AS month, payload->'data'->>'entry_id' AS entry, payload->'data'->>'balance_after' AS balance
     FROM notifications_outbox WHERE account_id = $1 AND type LIKE 'addon.%' ORDER BY created_at, payload->'data'->>'month'`, [account])).rows;

const addonState = async (stack: TestStack, account: string) => (await stack.pool.query<{ state: string; last_period: string }>(
  'SELECT state, last_period FROM account_addons WHERE account_id = $1 AND addon_id = $2', [account, ADDON])).rows[0];

const balanceOf = async (stack: TestStack, account: string, nowMs: number) =>
  balanceAt((await loadAccountStates(stack.pool, [account], { forUpdate: false, nowMs })).get(account)!, nowMs);

describe('add-ons', () => {
  test('deducted at activation (soonest-expiring credits first), then once per month through a crash, concurrent reruns and a late run', async ({ stack }) => {
    const plan = await planWithAddon(stack);
    const gift = { kind: 'gift' as const, amount: '5', expires_at: '2031-12-31T00:00:00Z' };
    const accounts = [
      await onPlan(stack, plan, [{ kind: 'purchased', amount: '20' }, gift]),
      await onPlan(stack, plan, [{ kind: 'purchased', amount: '20' }, gift]),
    ].sort();
    const [a, b] = accounts as [string, string];
    const clock = new TestClock(at('2031-01-10T12:00:00Z'));
    const api = orderOn(stack, clock);
    try {
      for (const account of accounts) {
        const { addon, settled } = await activateAddon(api.order, { accountId: account, addon: ADDON });
        expect([settled, addon.state, addon.lastPeriod]).toEqual(['charged', 'active', '2031-01']);
      }
      // The gift, expiring first, paid the 3.00; the purchased credits are untouched.
      const grants = (await loadAccountStates(stack.pool, [a], { forUpdate: false, nowMs: clock.now() })).get(a)!.grants;
      expect(grants.map((g) => [g.kind, g.remaining])).toEqual([['gift', toMicros('2')], ['purchased', toMicros('20')]]);
      // Active already: nothing more.
      expect((await activateAddon(api.order, { accountId: a, addon: ADDON })).settled).toBeNull();

      // February 1st: the scheduler dies right after its first account's charge committed.
      clock.set('2031-02-01T00:00:30Z');
      const crashing = orderOn(stack, clock, { at: 'after-pg-commit', onCommit: 1, crash: () => { throw new Error('scheduler crashed'); } });
      await expect(chargeAddons(crashing.order, { accounts })).rejects.toThrow('scheduler crashed');
      crashing.close();
      expect((await addonEntries(stack, a)).map((e) => e.key)).toEqual([addonKey(ADDON, '2031-01'), addonKey(ADDON, '2031-02')]);
      expect((await addonEntries(stack, b)).map((e) => e.key)).toEqual([addonKey(ADDON, '2031-01')]);
      // Two reruns at once charge what is left, once between them; a third has nothing to do.
      const [r1, r2] = await Promise.all([chargeAddons(api.order, { accounts }), chargeAddons(api.order, { accounts })]);
      expect([...r1.charged, ...r2.charged]).toEqual([{ accountId: b, addon: ADDON, period: '2031-02' }]);
      expect(await chargeAddons(api.order, { accounts })).toEqual({ charged: [], suspended: [], paid: 0 });

      // The scheduler was down through March: the April 2nd run charges March and April, each under its month.
      clock.set('2031-04-02T09:00:00Z');
      const late = await chargeAddons(api.order, { accounts });
      expect(late.charged.map((c) => `${c.accountId === a ? 'a' : 'b'}:${c.period}`)).toEqual(['a:2031-03', 'a:2031-04', 'b:2031-03', 'b:2031-04']);

      // Deactivated: May costs nothing, and April is not refunded.
      clock.set('2031-04-20T00:00:00Z');
      expect((await deactivateAddon(stack.pool, { accountId: a, addon: ADDON, nowMs: clock.now() })).state).toBe('inactive');
      clock.set('2031-05-01T00:01:00Z');
      expect((await chargeAddons(api.order, { accounts })).charged).toEqual([{ accountId: b, addon: ADDON, period: '2031-05' }]);
    } finally {
      api.close();
    }

    const months = ['2031-01', '2031-02', '2031-03', '2031-04'];
    // 25.00 - 4 x 3.00; each deduction one entry, one notification.
    expect(await addonEntries(stack, a)).toEqual(months.map((m, i) => ({ key: addonKey(ADDON, m), amount: -toMicros('3'), balance_after: toMicros(String(22 - 3 * i)) })));
    expect((await notices(stack, a)).map((n) => [n.type, n.month])).toEqual(months.map((m) => ['addon.deducted', m]));
    expect((await addonEntries(stack, b)).map((e) => e.key)).toEqual([...months, '2031-05'].map((m) => addonKey(ADDON, m)));
    expect(await addonState(stack, a)).toEqual({ state: 'inactive', last_period: '2031-04' });
    // Redis holds what Postgres holds.
    const nowMs = at('2031-05-01T00:01:00Z');
    expect(balanceAt((await stack.cache.read(b))!, nowMs)).toBe(await balanceOf(stack, b, nowMs));
    expect(await balanceOf(stack, b, nowMs)).toBe(toMicros('10'));
  });

  test('credits short: overdraft takes the price anyway; suspend takes nothing, notifies, and charges again once credits are back', async ({ stack }) => {
    const overdraftPlan = await planWithAddon(stack, { addonShortfall: 'overdraft' });
    const suspendPlan = await planWithAddon(stack, { addonShortfall: 'suspend' });
    const over = await onPlan(stack, overdraftPlan, [{ kind: 'purchased', amount: '1' }]);
    const susp = await onPlan(stack, suspendPlan, [{ kind: 'purchased', amount: '1' }]);
    const clock = new TestClock(at('2031-01-10T12:00:00Z'));
    const api = orderOn(stack, clock);
    try {
      expect((await activateAddon(api.order, { accountId: over, addon: ADDON })).addon.state).toBe('active');
      expect(await addonEntries(stack, over)).toEqual([{ key: addonKey(ADDON, '2031-01'), amount: -toMicros('3'), balance_after: -toMicros('2') }]);
      expect(await balanceOf(stack, over, clock.now())).toBe(-toMicros('2'));
      expect((await stack.pool.query<{ overdraft: bigint }>('SELECT overdraft FROM accounts WHERE id = $1', [over])).rows[0]!.overdraft).toBe(toMicros('2'));

      const suspended = await activateAddon(api.order, { accountId: susp, addon: ADDON });
      expect([suspended.settled, suspended.addon.state]).toEqual(['suspended', 'suspended']);
      expect(await addonEntries(stack, susp)).toEqual([]);
      expect(await balanceOf(stack, susp, clock.now())).toBe(toMicros('1'));
      expect(await notices(stack, susp)).toEqual([{ type: 'addon.suspended', month: '2031-01', entry: null, balance: '1.000000' }]);
      // The job does not try the same period again (nor notify twice).
      expect(await chargeAddons(api.order, { accounts: [susp] })).toEqual({ charged: [], suspended: [], paid: 0 });

      // Credits are added; the next month's start charges it and it is active again.
      await addGrant(api.order, { accountId: susp, input: { kind: 'purchased', amount: '5', priority: 100 }, idempotencyKey: 'top-up' });
      clock.set('2031-02-01T00:00:10Z');
      expect((await chargeAddons(api.order, { accounts: [susp] })).charged).toEqual([{ accountId: susp, addon: ADDON, period: '2031-02' }]);
    } finally {
      api.close();
    }
    expect(await addonState(stack, susp)).toEqual({ state: 'active', last_period: '2031-02' });
    expect(await addonEntries(stack, susp)).toEqual([{ key: addonKey(ADDON, '2031-02'), amount: -toMicros('3'), balance_after: toMicros('3') }]);
    expect((await notices(stack, susp)).map((n) => [n.type, n.month])).toEqual([['addon.suspended', '2031-01'], ['addon.deducted', '2031-02']]);
  });

  test('a postpaid account on an overdraft plan accrues the price to the month it was charged', async ({ stack }) => {
    const { plan } = await upsertPlan(stack.pool, {
      id: `addons-post-${randomUUID()}`, name: 'Postpaid add-on plan', currency: 'USD', billingMode: 'postpaid', signupGiftAmount: 0n,
      signupGiftValidityDays: 7, monthlyAllowanceAmount: 0n, allowanceRolloverMonths: 2, defaultMonthlyLimit: null, lowBalanceThreshold: 0n,
      addons: [{ id: ADDON, name: 'Voice cloning', monthlyPrice: toMicros('3') }], addonShortfall: 'overdraft',
    });
    const id = await createAccount(stack, { billing_mode: 'postpaid' }, [{ kind: 'promotional', amount: '1' }]);
    await stack.pool.query('UPDATE accounts SET plan_id = $2 WHERE id = $1', [id, plan.id]);
    const clock = new TestClock(at('2031-01-10T12:00:00Z'));
    const api = orderOn(stack, clock);
    try {
      await activateAddon(api.order, { accountId: id, addon: ADDON });
    } finally {
      api.close();
    }
    const accrued = await stack.pool.query<{ month: string; amount: bigint }>(
      `SELECT to_char(month, 'YYYY-MM') AS month, amount FROM postpaid_usage WHERE account_id = $1`, [id]);
    expect(accrued.rows).toEqual([{ month: '2031-01', amount: toMicros('2') }]);
    expect(await addonEntries(stack, id)).toEqual([{ key: addonKey(ADDON, '2031-01'), amount: -toMicros('3'), balance_after: 0n }]);
  });
});
