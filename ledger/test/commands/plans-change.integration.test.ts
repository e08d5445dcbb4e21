import { randomUUID } from 'node:crypto';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { getAccountPlan, upsertPlan, type PlanSettings } from '@meterstream/platform/stores/plans';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { activateAddon } from '@meterstream/ledger/commands/activate-addon';
import { changePlan, IdempotencyConflictError, PlanChangeRefusedError } from '@meterstream/ledger/commands/change-plan';
import { chargeAddons } from '@meterstream/ledger/commands/charge-addons';
import { expireGrants } from '@meterstream/ledger/commands/expire-grants';
import { grantAllowances } from '@meterstream/ledger/commands/grant-allowances';
import { readHistory } from '@meterstream/ledger/history';
import { toMicros, type BillingMode } from '@meterstream/schemas';
import { createAccount } from '../../../tests/support/fixtures.js';
import type { TestStack } from '../../../tests/support/stack.js';
import { describe, expect, test } from '../../../tests/support/test.js';

const log = createLogger('plans-test', 'silent');
const at = (iso: string) => Date.parse(iso);

async function plan(stack: TestStack, allowance: string, rollover: number, over: Partial<PlanSettings> = {}, billingMode: BillingMode = 'prepaid'): Promise<string> {
  const { plan: p } = await upsertPlan(stack.pool, {
    id: `plan-${randomUUID()}`, name: `Allowance ${allowance}`, currency: 'USD', billingMode, signupGiftAmount: 0n, signupGiftValidityDays: 7,
    monthlyAllowanceAmount: toMicros(allowance), allowanceRolloverMonths: rollover, defaultMonthlyLimit: null, lowBalanceThreshold: 0n, ...over,
  });
  return p.id;
}

async function onPlan(stack: TestStack, planId: string, anchorDay = 1): Promise<string> {
  const id = await createAccount(stack);
  await stack.pool.query('UPDATE accounts SET plan_id = $2, billing_anchor_day = $3 WHERE id = $1', [id, planId, anchorDay]);
  return id;
}

function orderOn(stack: TestStack, clock: TestClock): { order: WriteOrder; close: () => void } {
  const cache = new CacheWriter(stack.cache, stack.pool, log);
  return { order: new WriteOrder({ pool: stack.pool, send: () => Promise.resolve(), cache, topics: stack.topics, log, now: () => clock.now() }), close: () => cache.stop() };
}

const allowances = async (stack: TestStack, account: string) => (await stack.pool.query<{ key: string; amount: bigint; expires: string }>(
  `SELECT e.idempotency_key AS key, g.amount, to_char(g.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') AS expires
     FROM ledger_entries e JOIN grants g ON g.id = e.grant_id WHERE e.account_id = $1 AND e.kind = 'grant' AND g.kind = 'allowance' ORDER BY e.seq`, [account])).rows;

describe('plan changes', () => {
  test('take effect at the next period: in the history and notified at once, the new allowance and add-on price from the period start', async ({ stack }) => {
    const addon = (price: string) => ({ addons: [{ id: 'concurrency', name: 'Concurrency', monthlyPrice: toMicros(price) }], addonShortfall: 'overdraft' as const });
    const basic = await plan(stack, '10', 2, addon('2'));
    const pro = await plan(stack, '25', 1, addon('4'));
    const account = await onPlan(stack, basic);
    const only = { accounts: [account] };
    const clock = new TestClock(at('2031-01-05T10:00:00Z'));
    const api = orderOn(stack, clock);
    try {
      await grantAllowances(api.order, only);
      await activateAddon(api.order, { accountId: account, addon: 'concurrency' });

      clock.set('2031-01-20T15:00:00Z');
      const changed = await changePlan(api.order, { accountId: account, planId: pro, idempotencyKey: 'upgrade-1' });
      expect(changed.account).toMatchObject({ planId: basic, pendingPlanId: pro, pendingPlanAt: new Date('2031-02-01T00:00:00Z') });
      // A retry is answered, not recorded again; the key for another plan is refused.
      expect((await changePlan(api.order, { accountId: account, planId: pro, idempotencyKey: 'upgrade-1' })).replayed).toBe(true);
      await expect(changePlan(api.order, { accountId: account, planId: basic, idempotencyKey: 'upgrade-1' })).rejects.toThrow(IdempotencyConflictError);

      // The last millisecond of January: still on the basic plan, nothing switched.
      clock.set('2031-01-31T23:59:59.999Z');
      expect((await grantAllowances(api.order, only)).switched).toEqual([]);

      // February 1st: the add-on job may run before the allowance job; either way February is on the pro plan.
      clock.set('2031-02-01T00:00:20Z');
      expect((await chargeAddons(api.order, only)).charged).toEqual([{ accountId: account, addon: 'concurrency', period: '2031-02' }]);
      const run = await grantAllowances(api.order, only);
      expect([run.granted, run.switched]).toEqual([[{ accountId: account, month: '2031-02' }], [account]]);
      expect(await grantAllowances(api.order, only)).toEqual({ granted: [], replayed: 0, switched: [] });
    } finally {
      api.close();
    }
    expect(await getAccountPlan(stack.pool, account)).toMatchObject({
      planId: pro, planSince: new Date('2031-02-01T00:00:00Z'), pendingPlanId: null, pendingPlanAt: null,
    });
    // January: basic's 10.00 (rollover 2); February: pro's 25.00 (rollover 1).
    expect(await allowances(stack, account)).toEqual([
      { key: 'allowance:2031-01', amount: toMicros('10'), expires: '2031-04-01T00:00' },
      { key: 'allowance:2031-02', amount: toMicros('25'), expires: '2031-04-01T00:00' },
    ]);
    const history = await readHistory(stack.pool, account, { limit: 20 });
    expect(history.flatMap((h) => (h.kind === 'usage' || h.kind === 'grant' ? [] : [[h.kind, h.amount, h.reason]])).reverse()).toEqual([
      ['addon', -toMicros('2'), 'add-on Concurrency (concurrency) for the period 2031-01'],
      ['plan_change', 0n, `plan ${basic} -> ${pro} from 2031-02-01T00:00:00.000Z`],
      ['addon', -toMicros('4'), 'add-on Concurrency (concurrency) for the period 2031-02'],
    ]);
    const notified = await stack.pool.query<{ data: unknown }>(`SELECT payload->'data' AS data FROM notifications_outbox WHERE account_id = $1 AND type = 'plan.changed'`, [account]);
    expect(notified.rows).toEqual([{ data: { account_id: account, from_plan: basic, to_plan: pro, effective_at: '2031-02-01T00:00:00.000Z' } }]);
  });

  test('a late run grants the periods before the switch on the old plan and those after on the new one', async ({ stack }) => {
    const basic = await plan(stack, '10', 2);
    const pro = await plan(stack, '25', 2);
    const account = await onPlan(stack, basic);
    const clock = new TestClock(at('2031-01-01T00:00:10Z'));
    const api = orderOn(stack, clock);
    try {
      await grantAllowances(api.order, { accounts: [account] });
      clock.set('2031-02-10T00:00:00Z');
      // The scheduler is down from February 1st to March 3rd; the change was asked for on February 10th.
      await changePlan(api.order, { accountId: account, planId: pro, idempotencyKey: 'k' });
      clock.set('2031-03-03T00:00:00Z');
      await grantAllowances(api.order, { accounts: [account] });
    } finally {
      api.close();
    }
    expect((await allowances(stack, account)).map((g) => [g.key, g.amount])).toEqual([
      ['allowance:2031-01', toMicros('10')], ['allowance:2031-02', toMicros('10')], ['allowance:2031-03', toMicros('25')],
    ]);
  });

  test('refused: another billing mode or currency, an add-on in use the new plan lacks, the plan it is on', async ({ stack }) => {
    const withAddon = await plan(stack, '0', 2, { addons: [{ id: 'kb', name: 'Knowledge base', monthlyPrice: 0n }] });
    const account = await onPlan(stack, withAddon);
    const clock = new TestClock(at('2031-01-05T00:00:00Z'));
    const api = orderOn(stack, clock);
    const refusal = (planId: string, key = randomUUID()) => changePlan(api.order, { accountId: account, planId, idempotencyKey: key }).then(
      () => 'accepted', (e: unknown) => (e instanceof PlanChangeRefusedError ? e.code : String(e)));
    try {
      expect(await refusal(await plan(stack, '0', 2, {}, 'postpaid'))).toBe('BILLING_MODE_CHANGE');
      expect(await refusal('default-eur-prepaid')).toBe('PLAN_MISMATCH');
      expect(await refusal(withAddon)).toBe('PLAN_UNCHANGED');
      await activateAddon(api.order, { accountId: account, addon: 'kb' });
      expect(await refusal(await plan(stack, '0', 2))).toBe('ADDON_NOT_OFFERED');
    } finally {
      api.close();
    }
    // Nothing was recorded for the refusals.
    expect((await readHistory(stack.pool, account, { limit: 10, kind: 'plan_change' }))).toEqual([]);
  });
});

describe('billing anchor day', () => {
  test('periods start on the anchor day: the allowance arrives on the 15th and expires on a 15th; add-ons are charged on it', async ({ stack }) => {
    const planId = await plan(stack, '10', 2, { addons: [{ id: 'concurrency', name: 'Concurrency', monthlyPrice: toMicros('1') }], addonShortfall: 'overdraft' });
    const account = await onPlan(stack, planId, 15);
    const only = { accounts: [account] };
    const clock = new TestClock(at('2031-01-15T00:00:00Z'));
    const api = orderOn(stack, clock);
    try {
      expect((await grantAllowances(api.order, only)).granted).toEqual([{ accountId: account, month: '2031-01' }]);
      await activateAddon(api.order, { accountId: account, addon: 'concurrency' });
      // February 1st is no period start for this account; the 14th neither.
      for (const day of ['2031-02-01T00:00:00Z', '2031-02-14T23:59:59.999Z']) {
        clock.set(day);
        expect((await grantAllowances(api.order, only)).granted).toEqual([]);
        expect((await chargeAddons(api.order, only)).charged).toEqual([]);
      }
      clock.set('2031-02-15T00:00:00Z');
      expect((await grantAllowances(api.order, only)).granted).toEqual([{ accountId: account, month: '2031-02' }]);
      expect((await chargeAddons(api.order, only)).charged).toEqual([{ accountId: account, addon: 'concurrency', period: '2031-02' }]);
      // The period 2031-01 (rollover 2) is usable through April 14th and gone on April 15th 00:00 UTC, less the two
      // 1.00 add-on charges, which took the oldest allowance first.
      expect((await expireGrants(api.order, { now: at('2031-04-14T23:59:59.999Z'), ...only })).grants).toBe(0);
      expect(await expireGrants(api.order, { now: at('2031-04-15T00:00:00Z'), ...only })).toEqual({ accounts: 1, grants: 1, lost: toMicros('8') });
    } finally {
      api.close();
    }
    expect(await allowances(stack, account)).toEqual([
      { key: 'allowance:2031-01', amount: toMicros('10'), expires: '2031-04-15T00:00' },
      { key: 'allowance:2031-02', amount: toMicros('10'), expires: '2031-05-15T00:00' },
    ]);
  });

  test('a plan change waits for the account\'s next period start, not the calendar month', async ({ stack }) => {
    const account = await onPlan(stack, await plan(stack, '10', 2), 10);
    const clock = new TestClock(at('2031-03-25T08:00:00Z'));
    const api = orderOn(stack, clock);
    try {
      const { account: after } = await changePlan(api.order, { accountId: account, planId: await plan(stack, '20', 2), idempotencyKey: 'k' });
      expect(after.pendingPlanAt).toEqual(new Date('2031-04-10T00:00:00Z'));
    } finally {
      api.close();
    }
  });
});
