import { randomUUID } from 'node:crypto';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { upsertPlan } from '@meterstream/platform/stores/plans';
import { balanceAt, loadAccountStates } from '@meterstream/ledger/account-state';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { allowanceKey, grantAllowances } from '@meterstream/ledger/commands/grant-allowances';
import { expireGrants } from '@meterstream/ledger/commands/expire-grants';
import { readHistory } from '@meterstream/ledger/history';
import { toMicros } from '@meterstream/schemas';
import { startInProcessRater } from '../../../rater/test/in-process-rater.js';
import { createAccount, produceEvents, readTopicMessages, setPrices, usageEvent, waitRaterIdle } from '../../../tests/support/fixtures.js';
import type { TestStack } from '../../../tests/support/stack.js';
import { describe, expect, test } from '../../../tests/support/test.js';

const log = createLogger('allowance-test', 'silent');
const at = (iso: string) => Date.parse(iso);

/** A plan of its own with a 10.00 monthly allowance rolling over `rollover` months, and `n` prepaid accounts on it. */
async function accountsOnPlan(stack: TestStack, n: number, rollover = 2): Promise<string[]> {
  const { plan } = await upsertPlan(stack.pool, {
    id: `allowance-${randomUUID()}`, name: 'Allowance plan', currency: 'USD', billingMode: 'prepaid',
    signupGiftAmount: 0n, signupGiftValidityDays: 7, monthlyAllowanceAmount: toMicros('10'), allowanceRolloverMonths: rollover,
    defaultMonthlyLimit: null, lowBalanceThreshold: 0n,
  });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = await createAccount(stack);
    await stack.pool.query('UPDATE accounts SET plan_id = $2 WHERE id = $1', [id, plan.id]);
    ids.push(id);
  }
  return ids.sort();
}

interface GrantView { month: string; remaining: bigint; expires: string }

/** The account's allowance grants, by the month their ledger key names. */
async function allowances(stack: TestStack, account: string): Promise<GrantView[]> {
  const r = await stack.pool.query<{ key: string; remaining: bigint; expires_at: Date }>(
    `SELECT e.idempotency_key AS key, g.remaining, g.expires_at FROM ledger_entries e JOIN grants g ON g.id = e.grant_id
      WHERE e.account_id = $1 AND e.kind = 'grant' AND g.kind = 'allowance' ORDER BY e.seq`, [account]);
  return r.rows.map((row) => ({ month: row.key.replace('allowance:', ''), remaining: row.remaining, expires: row.expires_at.toISOString() }));
}

const expiries = async (stack: TestStack, account: string) =>
  (await stack.pool.query<{ amount: bigint; balance_after: bigint }>(
    `SELECT amount, balance_after FROM ledger_entries WHERE account_id = $1 AND kind = 'expiry' ORDER BY seq`, [account])).rows;

describe('monthly allowance, rollover and expiry', () => {
  test('rolls over two months, burns the oldest first and expires the remainder exactly at its instant', async ({ stack }) => {
    await setPrices(stack); // image: 0.04 each
    const [account] = await accountsOnPlan(stack, 1);
    const only = { accounts: [account!] };
    const clock = new TestClock(at('2031-01-01T00:00:30Z'));
    const rater = await startInProcessRater(stack);
    const use = async (images: number, when: string) => {
      await produceEvents(stack, [usageEvent(account!, 'image', String(images), randomUUID(), new Date(when))]);
      await waitRaterIdle(stack);
    };
    try {
      await grantAllowances(stack.ledger, { now: clock.now(), ...only });
      await use(100, '2031-01-20T10:00:00Z'); // 4.00 from January's
      clock.set('2031-02-01T00:00:30Z');
      await grantAllowances(stack.ledger, { now: clock.now(), ...only });
      await use(75, '2031-02-10T10:00:00Z'); // 3.00, still from January's (the oldest)
      clock.set('2031-03-01T00:00:30Z');
      await grantAllowances(stack.ledger, { now: clock.now(), ...only });
      await use(25, '2031-03-15T10:00:00Z'); // 1.00, January's again
    } finally {
      await rater.stop();
    }
    expect(await allowances(stack, account!)).toEqual([
      { month: '2031-01', remaining: toMicros('2'), expires: '2031-04-01T00:00:00.000Z' },
      { month: '2031-02', remaining: toMicros('10'), expires: '2031-05-01T00:00:00.000Z' },
      { month: '2031-03', remaining: toMicros('10'), expires: '2031-06-01T00:00:00.000Z' },
    ]);

    // The last millisecond of March: January's allowance is still there.
    expect(await expireGrants(stack.ledger, { now: at('2031-03-31T23:59:59.999Z'), ...only })).toEqual({ accounts: 0, grants: 0, lost: 0n });
    clock.set('2031-04-01T00:00:00Z');
    expect(await expireGrants(stack.ledger, { now: clock.now(), ...only })).toEqual({ accounts: 1, grants: 1, lost: toMicros('2') });
    await grantAllowances(stack.ledger, { now: clock.now(), ...only });
    expect(await expiries(stack, account!)).toEqual([{ amount: -toMicros('2'), balance_after: toMicros('20') }]);
    expect((await allowances(stack, account!)).map((g) => [g.month, g.remaining])).toEqual([
      ['2031-01', 0n], ['2031-02', toMicros('10')], ['2031-03', toMicros('10')], ['2031-04', toMicros('10')],
    ]);
    const cached = (await stack.cache.read(account!))!;
    expect(balanceAt(cached, clock.now())).toBe(toMicros('30'));
  });

  test('grants each (account, month) once: run twice at once, and rerun after a crash midway', async ({ stack }) => {
    const accounts = await accountsOnPlan(stack, 3);
    const now = at('2031-01-01T00:01:00Z');
    // A scheduler that dies right after its second grant committed (before publishing or caching it).
    const cache = new CacheWriter(stack.cache, stack.pool, log);
    const crashing = new WriteOrder({
      pool: stack.pool, send: () => Promise.resolve(), cache, topics: stack.topics, log,
      fault: { at: 'after-pg-commit', onCommit: 2, crash: () => { throw new Error('scheduler crashed'); } },
    });
    await expect(grantAllowances(crashing, { now, accounts })).rejects.toThrow('scheduler crashed');
    cache.stop();
    const granted = async () => (await stack.pool.query<{ account_id: string; n: bigint }>(
      `SELECT account_id, count(*) AS n FROM ledger_entries WHERE account_id = ANY($1) AND idempotency_key = $2 GROUP BY account_id ORDER BY account_id`,
      [accounts, allowanceKey('2031-01')])).rows;
    expect(await granted()).toEqual(accounts.slice(0, 2).map((account_id) => ({ account_id, n: 1n })));

    const [a, b] = await Promise.all([
      grantAllowances(stack.ledger, { now, accounts }),
      grantAllowances(stack.ledger, { now: now + 5_000, accounts }),
    ]);
    // Between them the two reruns granted only what the crashed run had not, once.
    expect([...a.granted, ...b.granted]).toEqual([{ accountId: accounts[2], month: '2031-01' }]);
    expect(await grantAllowances(stack.ledger, { now, accounts })).toEqual({ granted: [], replayed: 0, switched: [] });
    expect(await granted()).toEqual(accounts.map((account_id) => ({ account_id, n: 1n })));
    const states = await loadAccountStates(stack.pool, accounts, { forUpdate: false, nowMs: now });
    expect(accounts.map((id) => balanceAt(states.get(id)!, now))).toEqual(accounts.map(() => toMicros('10')));
  });

  test('a late run grants the missed months still usable, each dated and expiring by its own month', async ({ stack }) => {
    const [account] = await accountsOnPlan(stack, 1);
    await grantAllowances(stack.ledger, { now: at('2031-01-01T00:00:10Z'), accounts: [account!] });
    // The scheduler was down from January to June 10th: February's and March's allowances expired
    // (May 1st, June 1st) before it came back, so only April, May and June are still owed.
    const late = await grantAllowances(stack.ledger, { now: at('2031-06-10T08:00:00Z'), accounts: [account!] });
    expect(late.granted.map((g) => g.month)).toEqual(['2031-04', '2031-05', '2031-06']);
    expect(await allowances(stack, account!)).toEqual([
      { month: '2031-01', remaining: toMicros('10'), expires: '2031-04-01T00:00:00.000Z' },
      { month: '2031-04', remaining: toMicros('10'), expires: '2031-07-01T00:00:00.000Z' },
      { month: '2031-05', remaining: toMicros('10'), expires: '2031-08-01T00:00:00.000Z' },
      { month: '2031-06', remaining: toMicros('10'), expires: '2031-09-01T00:00:00.000Z' },
    ]);
  });

  test('an expiry reaches Redis, the history and ledger.entries without any new event', async ({ stack }) => {
    const expiresAt = '2031-01-01T12:00:00.000Z';
    const account = await createAccount(stack, {}, [
      { kind: 'gift', amount: '10', expires_at: expiresAt },
      { kind: 'purchased', amount: '5' },
    ]);
    const before = (await stack.cache.read(account))!;
    expect(before.grants.map((g) => g.kind)).toEqual(['gift', 'purchased']);

    expect(await expireGrants(stack.ledger, { now: at(expiresAt), accounts: [account] })).toEqual({ accounts: 1, grants: 1, lost: toMicros('10') });
    const after = (await stack.cache.read(account))!;
    expect({ kinds: after.grants.map((g) => g.kind), seq: after.ledgerSeq, balance: balanceAt(after, at(expiresAt)) })
      .toEqual({ kinds: ['purchased'], seq: 3n, balance: toMicros('5') });
    expect(await expiries(stack, account)).toEqual([{ amount: -toMicros('10'), balance_after: toMicros('5') }]);
    expect(await readHistory(stack.pool, account, { limit: 10, kind: 'expiry' })).toEqual([expect.objectContaining({
      kind: 'expiry', seq: 3n, amount: -toMicros('10'), balance_after: toMicros('5'), reason: `gift grant expired at ${expiresAt}`,
    })]);
    // Twice is once.
    expect(await expireGrants(stack.ledger, { now: at(expiresAt) + 60_000, accounts: [account] })).toEqual({ accounts: 0, grants: 0, lost: 0n });

    const onTopic = (await readTopicMessages(stack, stack.topics.entries)).filter((m) => m.key === account).map((m) => JSON.parse(m.value) as { kind: string });
    expect(onTopic.filter((e) => e.kind === 'expiry')).toEqual([expect.objectContaining({ kind: 'expiry', amount: '-10.000000', balance_after: '5.000000', seq: 3 })]);
  });
});
