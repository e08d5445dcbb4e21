import { describe, expect, onTestFinished } from 'vitest';
import { formatMicros, LedgerEntry, toMicros } from '@meterstream/schemas';
import { test } from '../../tests/support/test.js';
import { readTopicMessages } from '../../tests/support/fixtures.js';
import { caughtUp, rows, runSink, waitFor, type RawMessage } from './support/harness.js';

/** The i-th entry of a workload: grants of several accounts, some paying an overdraft off. */
function entry(i: number): LedgerEntry {
  const amount = BigInt(1 + i) * 1_250_000n;
  const paid = i % 3 === 0 ? amount / 2n : 0n;
  return LedgerEntry.parse({
    entry_id: `entry-${i}`, account_id: `acct-${i % 4}`, seq: 10 + i, kind: 'grant', amount: formatMicros(amount), currency: i % 5 ? 'USD' : 'EUR',
    grant_id: `grant-${i}`, overdraft_paid: formatMicros(paid), balance_after: formatMicros(amount - paid - 3_000_000n),
    reason: i % 2 ? null : `promo "spring" #${i}`, idempotency_key: `key-${i}`,
    // Across a month boundary: two partitions of the table.
    created_at: new Date(Date.UTC(2025, 0, 31, 23) + i * 600_000).toISOString(),
  });
}

interface Stored {
  account_id: string; entry_id: string; seq: string; kind: string; amount: string; currency: string; grant_id: string | null;
  overdraft_paid: string; balance_after: string; reason: string | null; idempotency_key: string; created_at: string;
}

/** What ledger_entries FINAL must hold for an entry: the same figures, as exact Int64 text. */
const expected = (e: LedgerEntry): Stored => ({
  account_id: e.account_id, entry_id: e.entry_id, seq: String(e.seq), kind: e.kind, amount: micros(e.amount), currency: e.currency,
  grant_id: e.grant_id, overdraft_paid: micros(e.overdraft_paid), balance_after: micros(e.balance_after), reason: e.reason,
  idempotency_key: e.idempotency_key, created_at: e.created_at.replace('T', ' ').replace('Z', ''),
});
const micros = (m: string) => toMicros(m).toString();

describe('sink: ledger.entries -> ClickHouse ledger_entries', () => {
  test('writes every entry once with its figures, however often it was published, and dead-letters the invalid', async ({ stack, clickhouse, services }) => {
    const { ch, database } = clickhouse;
    const entries = Array.from({ length: 12 }, (_, i) => entry(i));
    const invalid: RawMessage[] = [
      { key: 'acct-0', value: JSON.stringify({ ...entries[0], kind: 'bonus' }) },
      { key: 'acct-1', value: 'not json' },
    ];
    const producer = stack.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const publish = (messages: RawMessage[]) => producer.send({ topic: stack.topics.entries, acks: -1, messages });
    const asMessage = (e: LedgerEntry): RawMessage => ({ key: e.account_id, value: JSON.stringify(e) });
    // The sweep republishing entries 2 and 5 after a crash that came after their first publication.
    await publish([...entries.slice(0, 6).map(asMessage), invalid[0]!, ...entries.slice(6).map(asMessage), asMessage(entries[2]!), invalid[1]!, asMessage(entries[5]!)]);
    await producer.disconnect();

    const sink = await runSink(stack, ch, database);
    onTestFinished(() => sink.stop());
    const group = `${stack.env.SINK_GROUP_ID}.entries`;
    await waitFor(`${group} to commit the whole topic`, () => caughtUp(services.admin, group, stack.topics.entries));

    const stored = await rows<Stored>(ch, `
      SELECT account_id, entry_id, toString(seq) AS seq, kind, toString(amount) AS amount, currency, grant_id, toString(overdraft_paid) AS overdraft_paid,
             toString(balance_after) AS balance_after, reason, idempotency_key, toString(created_at) AS created_at
      FROM ${database}.ledger_entries FINAL WHERE account_id LIKE 'acct-%' AND entry_id LIKE 'entry-%' ORDER BY seq`);
    expect(stored).toEqual(entries.map(expected));
    expect(stored.find((r) => r.entry_id === 'entry-3')).toMatchObject({ amount: '5000000', overdraft_paid: '2500000', balance_after: '-500000' });

    const dead = await readTopicMessages(stack, stack.topics.dlq);
    expect(dead.map((m) => [m.headers['error-code'], m.headers['source-topic'], m.value]).sort()).toEqual([
      ['INVALID_JSON', stack.topics.entries, 'not json'],
      ['INVALID_LEDGER_ENTRY', stack.topics.entries, invalid[0]!.value],
    ]);
  });
});
