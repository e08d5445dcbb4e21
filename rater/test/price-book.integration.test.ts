import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@meterstream/platform/logger';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { setPrices } from '../../tests/support/fixtures.js';
import { waitFor } from '../../tests/support/processes.js';
import { PriceBook } from '../src/price-book.js';

const log = createLogger('price-book-test', process.env.LOG_LEVEL);
const product = () => `pb-${randomBytes(5).toString('hex')}`;
const price = { unit: 'request', unit_price: '0.002', per: 1, currency: 'USD' } as const;
const entry = { model: 'per_unit', unit: 'request', unitPrice: 2000n, per: 1n };

describe('PriceBook', () => {
  let stack: TestStack;
  const pools: Pool[] = [];
  const bookPool = (applicationName: string) => {
    const pool = createPool(stack.config.DATABASE_URL, 3, { applicationName, log });
    pools.push(pool);
    return pool;
  };

  beforeAll(async () => {
    stack = await openStack('price-book');
  });
  afterAll(async () => {
    for (const p of pools) await p.end();
    await stack?.close();
  });

  it('survives the termination of its LISTEN connection, listens again and sees prices set meanwhile and after', async () => {
    const name = `price-book-${randomBytes(4).toString('hex')}`;
    const book = new PriceBook(bookPool(name), log, { reconnectInitialMs: 300 });
    await book.start();
    try {
      const listeners = async () =>
        (await stack.pool.query<{ pid: number }>(
          'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND pid = $2',
          [name, book.listenerPid ?? 0],
        )).rows.map((r) => r.pid);
      const [before] = await listeners();
      expect(before).toBeDefined();

      const killed = await stack.pool.query<{ pid: number; done: boolean }>(
        'SELECT pid, pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
        [name],
      );
      expect(killed.rows).toContainEqual({ pid: before, done: true });
      // Set while the book is (most likely) still disconnected: its NOTIFY reaches no one, the
      // reload after reconnecting must pick it up.
      const meanwhile = product();
      await setPrices(stack, { [meanwhile]: price });

      // Still alive (an unhandled 'error' event would have killed this process), and listening
      // again on a new connection.
      const after = await waitFor('a new LISTEN connection', async () => {
        const pids = await listeners();
        return pids.length === 1 && pids[0] !== before ? pids[0] : undefined;
      });
      expect(after).not.toBe(before);
      await waitFor('the price set while disconnected', async () => book.lookup(meanwhile, 'USD'));
      expect(book.lookup(meanwhile, 'USD')).toEqual(entry);

      const later = product();
      await setPrices(stack, { [later]: price });
      await waitFor('the price set after the reconnect, through NOTIFY', async () => book.lookup(later, 'USD'));
      expect(book.lookup(later, 'USD')).toEqual(entry);
    } finally {
      await book.stop();
    }
  });

  it('ensureKnown waits for the reload in flight instead of dead-lettering a price set a moment ago', async () => {
    const book = new PriceBook(bookPool(`price-book-${randomBytes(4).toString('hex')}`), log);
    await book.start();
    try {
      for (let i = 0; i < 30; i++) {
        const p = product();
        await setPrices(stack, { [p]: price });
        // What the NOTIFY handler does: a reload starts, its query not finished yet.
        const inFlight = book.reload();
        await book.ensureKnown([[p, 'USD']]);
        expect({ iteration: i, found: book.lookup(p, 'USD') }).toEqual({ iteration: i, found: entry });
        await inFlight;
      }
    } finally {
      await book.stop();
    }
  });

  it('reloads for an unknown product at most once a second by its clock, counted from the start of the last load', async () => {
    let clock = 10_000;
    // Not started: no LISTEN, so only ensureKnown can bring a new price in.
    const book = new PriceBook(bookPool(`price-book-${randomBytes(4).toString('hex')}`), log, { now: () => clock });
    const loading = book.reload();
    clock = 10_900; // the load's query started at 10_000 and finishes later
    await loading;

    const p = product();
    await setPrices(stack, { [p]: price });
    clock = 10_999;
    await book.ensureKnown([[p, 'USD']]);
    expect(book.lookup(p, 'USD')).toBeUndefined(); // throttled: the last load started 999 ms ago

    clock = 11_001;
    await book.ensureKnown([[p, 'USD']]);
    expect(book.lookup(p, 'USD')).toEqual(entry);
  });
});
