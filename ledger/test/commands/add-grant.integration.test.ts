import { SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import { createLogger } from '@meterstream/platform/logger';
import { balanceAt } from '@meterstream/ledger/account-state';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { EntrySweeper } from '@meterstream/ledger/entry-sweeper';
import type { Send } from '@meterstream/ledger/entries';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { addGrant, IdempotencyConflictError } from '@meterstream/ledger/commands/add-grant';
import { toMicros } from '@meterstream/schemas';
import { createAccount, readTopicMessages } from '../../../tests/support/fixtures.js';
import type { TestStack } from '../../../tests/support/stack.js';
import { describe, expect, test } from '../../../tests/support/test.js';

const log = createLogger('add-grant-test', 'silent');
const purchased = (amount: string) => ({ kind: 'purchased' as const, amount, priority: 100 });

/** The stack's write order, but publishing through `send` (which a test breaks). */
function writeOrderWith(stack: TestStack, send: Send) {
  const cache = new CacheWriter(stack.cache, stack.pool, log);
  return { order: new WriteOrder({ pool: stack.pool, send, cache, topics: stack.topics, log, publishWaitMs: 200 }), stop: () => cache.stop() };
}

const entryState = async (stack: TestStack, account: string) =>
  (await stack.pool.query<{ seq: bigint; published: boolean }>(
    'SELECT seq, published_at IS NOT NULL AS published FROM ledger_entries WHERE account_id = $1 ORDER BY seq', [account])).rows;

describe('addGrant', () => {
  test('pays an overdraft off first, and a replay answers the grant as it was added', async ({ stack }) => {
    const account = await createAccount(stack);
    await stack.pool.query('UPDATE accounts SET overdraft = 3000000 WHERE id = $1', [account]);
    const first = await addGrant(stack.ledger, { accountId: account, input: purchased('5'), idempotencyKey: 'invoice-1' });
    expect(first).toMatchObject({ replayed: false, grant: { amount: '5.000000', remaining: '2.000000' } });
    const again = await addGrant(stack.ledger, { accountId: account, input: purchased('5.0'), idempotencyKey: 'invoice-1' });
    expect(again).toEqual({ ...first, replayed: true });
    await expect(addGrant(stack.ledger, { accountId: account, input: purchased('4'), idempotencyKey: 'invoice-1' }))
      .rejects.toBeInstanceOf(IdempotencyConflictError);
    const cached = (await stack.cache.read(account))!;
    expect({ balance: balanceAt(cached, Date.now()), overdraft: cached.overdraft, seq: cached.ledgerSeq }).toEqual({ balance: toMicros('2'), overdraft: 0n, seq: 1n });
    const entry = await stack.pool.query('SELECT amount, overdraft_paid, balance_after FROM ledger_entries WHERE account_id = $1', [account]);
    expect(entry.rows).toEqual([{ amount: 5_000_000n, overdraft_paid: 3_000_000n, balance_after: 2_000_000n }]);
  });

  const outages: [string, Send][] = [
    ['refuses the publication', () => Promise.reject(new Error('broker gone'))],
    ['never acknowledges it', () => new Promise<void>(() => undefined)],
  ];
  for (const [what, send] of outages) {
    test(`answers the committed grant when Kafka ${what}, and the sweeper publishes it`, async ({ stack }) => {
      const account = await createAccount(stack);
      const broken = writeOrderWith(stack, send);
      const added = await addGrant(broken.order, { accountId: account, input: purchased('4'), idempotencyKey: 'topup-1' }).finally(broken.stop);
      // Committed and cached, as if the process had died between commit and publish.
      expect(added.replayed).toBe(false);
      expect(balanceAt((await stack.cache.read(account))!, Date.now())).toBe(toMicros('4'));
      expect(await entryState(stack, account)).toEqual([{ seq: 1n, published: false }]);

      const producer = stack.kafka.producer(SERIAL_PRODUCER_CONFIG);
      await producer.connect();
      try {
        // No age limit, so the test needs no wait; the sweepers of other tests leave entries younger than 5 s alone.
        await new EntrySweeper(stack.pool, serialSender(producer), stack.topics.entries, log, { olderThanMs: 0 }).sweep();
      } finally {
        await producer.disconnect();
      }
      expect(await entryState(stack, account)).toEqual([{ seq: 1n, published: true }]);
      const onTopic = (await readTopicMessages(stack, stack.topics.entries)).filter((m) => m.key === account).map((m) => JSON.parse(m.value) as unknown);
      expect(onTopic).toEqual([expect.objectContaining({ account_id: account, kind: 'grant', amount: '4.000000', grant_id: added.grant.id, seq: 1 })]);
    });
  }
});
