import { systemClock } from '@meterstream/platform/clock';
import { randomUUID } from 'node:crypto';
import { loadAccountStates } from '@meterstream/ledger/account-state';
import { createAccount } from '../../tests/support/fixtures.js';
import { describe, expect, test } from '../../tests/support/test.js';

describe('loadAccountStates with forUpdate', () => {
  test('sees a grant committed by the writer whose lock it waited for, with that writer\'s ledger seq', async ({ stack }) => {
    const account = await createAccount(stack);
    const writer = await stack.pool.connect();
    const reader = await stack.pool.connect();
    try {
      // A concurrent command (a top-up, an allowance) holds the account's lock and adds a grant.
      await writer.query('BEGIN');
      await loadAccountStates(writer, [account], { forUpdate: true, nowMs: systemClock.now() });
      const grant = `g-${randomUUID()}`;
      await writer.query(
        `INSERT INTO grants (id, account_id, kind, amount, remaining, priority) VALUES ($1, $2, 'purchased', 5000000, 5000000, 100)`,
        [grant, account],
      );
      await writer.query('UPDATE accounts SET ledger_seq = ledger_seq + 1 WHERE id = $1', [account]);

      await reader.query('BEGIN');
      const waiting = loadAccountStates(reader, [account], { forUpdate: true, nowMs: systemClock.now() });
      // The reader is queued on the lock (pg_locks shows it waiting) before the writer commits.
      await expect.poll(async () => (await stack.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE NOT l.granted AND a.datname = current_database() AND a.query LIKE '%FOR NO KEY UPDATE%'`,
      )).rows[0]!.n, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
      await writer.query('COMMIT');

      const state = (await waiting).get(account)!;
      await reader.query('COMMIT');
      expect(state.grants.map((g) => [g.id, g.remaining])).toEqual([[grant, 5_000_000n]]);
      expect(state.ledgerSeq).toBe(1n);
    } finally {
      writer.release();
      reader.release();
    }
  });
});
