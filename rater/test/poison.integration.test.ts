import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { createAccount, produceEvents, readTopicMessages, setPrices, usageEvent, waitRaterIdle, type TopicMessage } from '../../tests/support/fixtures.js';
import { expectBooksBalance } from '../../tests/support/books.js';
import { startService } from '../../tests/support/processes.js';
import { encodeUsageEvent, priceMicros, toMicros, type UsageEvent } from '@meterstream/schemas';
import { SERIAL_PRODUCER_CONFIG } from '@meterstream/platform/kafka';
import { startInProcessRater, type InProcessRater } from './in-process-rater.js';

/** The dead letters of usage.dlq by the event id in their payload (all of them here are JSON). */
function byEventId(messages: TopicMessage[]): Map<string, TopicMessage[]> {
  const out = new Map<string, TopicMessage[]>();
  for (const m of messages) {
    const id = (JSON.parse(m.value) as { id: string }).id;
    out.set(id, [...(out.get(id) ?? []), m]);
  }
  return out;
}

describe('no single event stalls a partition', () => {
  let stack: TestStack;
  const raters: InProcessRater[] = [];
  let refusedProduct: string;
  let trigger: string;

  beforeAll(async () => {
    stack = await openStack('poison');
    await setPrices(stack);
    // A product Postgres refuses for a reason the rater cannot foresee: a trigger of this test's
    // own (the database is shared with other test files; only this product is concerned).
    const tag = stack.env.RATER_GROUP_ID!.replace(/\W/g, '_');
    refusedProduct = `refused-${tag}`;
    trigger = `refuse_${tag}`;
    await setPrices(stack, { [refusedProduct]: { unit: 'image', unit_price: '0.04', per: 1, currency: 'USD' } });
    await stack.pool.query(`CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'refused by the test trigger' USING ERRCODE = '22023'; END $$`);
    await stack.pool.query(`CREATE TRIGGER ${trigger} BEFORE INSERT ON usage_ledger FOR EACH ROW
      WHEN (NEW.product = '${refusedProduct}') EXECUTE FUNCTION ${trigger}()`);
  });
  afterEach(async () => {
    await Promise.all(raters.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    await stack.pool.query(`DROP TRIGGER IF EXISTS ${trigger} ON usage_ledger`);
    await stack.pool.query(`DROP FUNCTION IF EXISTS ${trigger}()`);
    await stack.close();
  });

  it('dead-letters each event Postgres cannot hold, charges the rest exactly, and keeps rating the partition', async () => {
    const account = await createAccount(stack, {}, [{ kind: 'purchased', amount: '50' }]);
    const at = new Date().toISOString();
    const raw = (id: string, product: string, quantity: string, properties?: Record<string, string>) =>
      JSON.stringify({ id, account_id: account, product, quantity, timestamp: at, ...(properties ? { properties } : {}) });
    const good: UsageEvent[] = [
      usageEvent(account, 'image', '2', 'good-1'),
      usageEvent(account, 'chat', '1500', 'good-2'),
      usageEvent(account, 'voice', '61', 'good-3'),
    ];
    const poison = {
      'nul-props': raw('nul-props', 'image', '1', { note: 'a\u0000b' }),
      'lone-surrogate': raw('lone-surrogate', 'image', '1', { note: 'x\ud800' }),
      'huge-quantity': raw('huge-quantity', 'image', '99999999999999'),
      'huge-amount': raw('huge-amount', 'image', '999999999999'), // a valid quantity, but $40 billion
      'db-refused': raw('db-refused', refusedProduct, '1'),
    };
    // Straight to Kafka (past ingest's checks), one batch, one partition: poison between good events.
    const producer = stack.kafka.producer(SERIAL_PRODUCER_CONFIG);
    await producer.connect();
    await producer.send({
      topic: stack.topics.events,
      acks: -1,
      messages: [good[0]!, ...Object.values(poison).slice(0, 3), good[1]!, ...Object.values(poison).slice(3), good[2]!]
        .map((v) => ({ key: account, value: typeof v === 'string' ? v : encodeUsageEvent(v) })),
    });
    await producer.disconnect();

    const rater = await startInProcessRater(stack);
    raters.push(rater);
    await waitRaterIdle(stack);
    const later = [usageEvent(account, 'image', '1', 'later-1'), usageEvent(account, 'call', '3', 'later-2')];
    await produceEvents(stack, later);
    await waitRaterIdle(stack);

    await expectBooksBalance(stack, [...good, ...later], [account]);
    const ledger = await stack.pool.query<{ event_id: string; amount: bigint }>('SELECT event_id, amount FROM usage_ledger WHERE account_id = $1', [account]);
    expect(new Map(ledger.rows.map((r) => [r.event_id, r.amount]))).toEqual(new Map([
      ['good-1', priceMicros(toMicros('2'), toMicros('0.04'), 1n)],
      ['good-2', priceMicros(toMicros('1500'), toMicros('0.002'), 1000n)],
      ['good-3', priceMicros(toMicros('61'), toMicros('0.60'), 60n)],
      ['later-1', priceMicros(toMicros('1'), toMicros('0.04'), 1n)],
      ['later-2', priceMicros(toMicros('3'), toMicros('0.0015'), 1n)],
    ]));
    expect(rater.stats.isolatedBatches).toBe(1); // only the batch holding the refused event

    const dead = byEventId(await readTopicMessages(stack, stack.topics.dlq));
    const expected = {
      'nul-props': ['INVALID_EVENT', 'NUL'],
      'lone-surrogate': ['INVALID_EVENT', 'surrogate'],
      'huge-quantity': ['INVALID_EVENT', 'quantity'],
      'huge-amount': ['AMOUNT_OUT_OF_RANGE', 'more than one event may cost'],
      'db-refused': ['DB_REFUSED', 'refused by the test trigger'],
    } as const;
    for (const [id, [code, reason]] of Object.entries(expected)) {
      const letters = dead.get(id) ?? [];
      expect({ id, codes: [...new Set(letters.map((m) => m.headers['error-code']))] }).toEqual({ id, codes: [code] });
      expect(letters[0]!.headers['error-reason']).toContain(reason);
      expect(letters[0]!.value).toBe(poison[id as keyof typeof poison]); // the original bytes
    }
    // ... and each is kept in Postgres, replayable (account and event ids only where the event was readable).
    const stored = await stack.pool.query<{ code: string; payload: Buffer }>(
      `SELECT code, payload FROM dead_letters WHERE msg_key = convert_to($1, 'UTF8')`, [account]);
    expect(new Map(stored.rows.map((r) => [(JSON.parse(r.payload.toString()) as { id: string }).id, [r.code, r.payload.toString()]]))).toEqual(
      new Map([...Object.entries(expected)].map(([id, [code]]) => [id, [code, poison[id as keyof typeof poison]]])));
  });

  it('sends dead letters committed just before a crash to usage.dlq after the restart', async () => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    const events = [usageEvent(account, 'image', '1', 'cr-1'), usageEvent(account, 'teleport', '1', 'cr-unknown'), usageEvent(account, 'image', '2', 'cr-2')];
    await produceEvents(stack, events);
    // Every earlier message is rated, so this batch is the doomed rater's first.
    const doomed = startService('rater/src/main.ts', { ...stack.env, LOG_LEVEL: 'warn', RATER_SESSION_TIMEOUT_MS: '6000', RATER_CRASH_AT: 'after-pg-commit', RATER_CRASH_ON_BATCH: '1' });
    onTestFailed(() => console.error(`doomed rater output:\n${doomed.output().slice(-4000)}`));
    expect(await doomed.exited).toBe('SIGKILL');
    const stored = await stack.pool.query<{ event_id: string; code: string }>('SELECT event_id, code FROM dead_letters WHERE account_id = $1', [account]);
    expect(stored.rows).toEqual([{ event_id: 'cr-unknown', code: 'UNKNOWN_PRODUCT' }]);
    expect(byEventId(await readTopicMessages(stack, stack.topics.dlq)).has('cr-unknown')).toBe(false); // committed, not sent

    raters.push(await startInProcessRater(stack));
    await waitRaterIdle(stack);
    expect(byEventId(await readTopicMessages(stack, stack.topics.dlq)).get('cr-unknown')?.[0]?.headers['error-code']).toBe('UNKNOWN_PRODUCT');
    await expectBooksBalance(stack, [events[0]!, events[2]!], [account]);
  });
});
