import { systemClock } from '@meterstream/platform/clock';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { createAccount, produceEvents, setPrices, usageEvent, waitRaterIdle } from '../../tests/support/fixtures.js';
import { waitFor } from '../../tests/support/processes.js';
import { priceMicros, toMicros } from '@meterstream/schemas';
import { cachedPart, loadAccountStates } from '@meterstream/ledger/account-state';
import { startInProcessRater, type InProcessRater } from './in-process-rater.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `npm run replay -- args`, as an operator types it. */
function replay(stack: TestStack, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn('npm', ['run', '--silent', 'replay', '--', ...args], { cwd: ROOT, env: stack.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

describe('replaying dead letters', () => {
  let stack: TestStack;
  let rater: InProcessRater;

  beforeAll(async () => {
    stack = await openStack('replay');
    await setPrices(stack);
    rater = await startInProcessRater(stack);
  });
  afterAll(async () => {
    await rater.stop();
    await stack.close();
  });

  it('charges a dead-lettered event once its price exists, and a second replay charges nothing more', async () => {
    const account = await createAccount(stack, {}, [{ kind: 'purchased', amount: '10' }]);
    const product = `late-${stack.env.RATER_GROUP_ID}`;
    const events = [usageEvent(account, product, '3', 'late-1'), usageEvent(account, 'image', '1', 'on-time'), usageEvent(account, product, '1', 'late-2')];
    await produceEvents(stack, events);
    await waitRaterIdle(stack);
    const letters = async () => (await stack.pool.query<{ event_id: string; code: string; replayed: boolean }>(
      'SELECT event_id, code, replayed_at IS NOT NULL AS replayed FROM dead_letters WHERE account_id = $1 ORDER BY event_id', [account])).rows;
    expect(await letters()).toEqual([
      { event_id: 'late-1', code: 'UNKNOWN_PRODUCT', replayed: false },
      { event_id: 'late-2', code: 'UNKNOWN_PRODUCT', replayed: false },
    ]);

    // The cause is fixed: the product gets its price.
    await setPrices(stack, { [product]: { unit: 'image', unit_price: '0.25', per: 1, currency: 'USD' } });
    const first = await replay(stack, ['--code', 'UNKNOWN_PRODUCT', '--account', account]);
    expect(first, first.output).toMatchObject({ code: 0 });
    const ledger = async () => new Map((await stack.pool.query<{ event_id: string; amount: bigint }>(
      'SELECT event_id, amount FROM usage_ledger WHERE account_id = $1', [account])).rows.map((r) => [r.event_id, r.amount]));
    await waitFor('replayed events rated', async () => (await ledger()).size === 3);
    await waitRaterIdle(stack);
    const charged = new Map([
      ['late-1', priceMicros(toMicros('3'), toMicros('0.25'), 1n)],
      ['on-time', priceMicros(toMicros('1'), toMicros('0.04'), 1n)],
      ['late-2', priceMicros(toMicros('1'), toMicros('0.25'), 1n)],
    ]);
    expect(await ledger()).toEqual(charged);
    expect((await letters()).map((l) => l.replayed)).toEqual([true, true]);

    // Again, and again after "losing" the replay marks (a crash between the produce and the commit).
    const second = await replay(stack, ['--code', 'UNKNOWN_PRODUCT', '--account', account]);
    expect(second, second.output).toMatchObject({ code: 0 });
    await stack.pool.query('UPDATE dead_letters SET replayed_at = NULL WHERE account_id = $1', [account]);
    const third = await replay(stack, ['--account', account]);
    expect(third, third.output).toMatchObject({ code: 0 });
    await waitRaterIdle(stack);
    expect(await ledger()).toEqual(charged);
    const burned = await stack.pool.query<{ burned: bigint }>('SELECT sum(amount - remaining)::bigint AS burned FROM grants WHERE account_id = $1', [account]);
    expect(burned.rows[0]!.burned).toBe([...charged.values()].reduce((a, b) => a + b, 0n));
    expect(await stack.cache.read(account)).toEqual(cachedPart((await loadAccountStates(stack.pool, [account], { forUpdate: false, nowMs: systemClock.now() })).get(account)!));
  });

  it('refuses a filter it does not understand, before touching anything', async () => {
    const bad = await replay(stack, ['--code', 'NO_SUCH_CODE']);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('--code');
  });
});
