// The demo's credit history: one account through three months in seconds, on the ledger's
// injectable clock (platform/src/clock.ts TestClock) instead of waiting. The ledger commands the
// scheduler runs (monthly allowance, expiry) run here at the demo clock's time; usage goes
// through Kafka and the pipeline's rater like any usage, timestamped by the demo clock.
import { randomBytes } from 'node:crypto';
import { systemClock, TestClock } from '@meterstream/platform/clock';
import { createKafka, SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import type { Logger } from '@meterstream/platform/logger';
import type { Pool } from '@meterstream/platform/postgres';
import { createRedis } from '@meterstream/platform/redis';
import { topicNames, type Transaction } from '@meterstream/schemas';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { grantAllowances } from '@meterstream/ledger/commands/grant-allowances';
import { expireGrants } from '@meterstream/ledger/commands/expire-grants';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { UsageEventProducer, type IngestConfig } from '@meterstream/ingest';

type Api = <T>(method: string, path: string, body?: unknown) => Promise<T>;

const DAY = 86_400_000;
const PLAN = 'demo-history-usd-prepaid';
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const monthStartAfter = (ms: number, months: number) => {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1);
};

/** Runs the story and returns the lines of its printed history. */
export async function creditHistoryStory(deps: { api: Api; config: IngestConfig; pool: Pool; log: Logger }): Promise<string[]> {
  const { api, config, pool, log } = deps;
  const clock = new TestClock(systemClock.now());
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const redis = createRedis(config.REDIS_URL, { connectionName: 'meterstream-demo-clock', log, timeouts: config });
  const kafka = createKafka(config.KAFKA_BROKERS, 'meterstream-demo-clock', log, config);
  const producer = kafka.producer(SERIAL_PRODUCER_CONFIG);
  await producer.connect();
  const cache = new CacheWriter(new BalanceCache(redis, config.REDIS_PREFIX), pool, log, { now: () => clock.now() });
  const order = new WriteOrder({ pool, send: serialSender(producer), cache, topics, log, now: () => clock.now(), publishWaitMs: 10_000 });
  const usage = await UsageEventProducer.connect(kafka, { topic: topics.events, lingerMs: 0, now: () => clock.now() });
  try {
    // $10 gift for 7 days, $5 a month rolling over one month: its allowance is usable in its own
    // month and the next, then expires.
    await api('PUT', `/v1/plans/${PLAN}`, {
      name: 'Demo: gift, allowance, rollover', currency: 'USD', billing_mode: 'prepaid',
      signup_gift: { amount: '10', validity_days: 7 }, monthly_allowance: { amount: '5', rollover_months: 1 },
    });
    const { id } = await api<{ id: string }>('POST', '/v1/accounts', {
      email: `history-${randomBytes(4).toString('hex')}@example.com`, currency: 'USD', billing_mode: 'prepaid', plan_id: PLAN,
    });
    const when = new Map<number, string>();
    const history = async () => (await api<{ transactions: Transaction[] }>('GET', `/v1/accounts/${id}/transactions?limit=200`)).transactions.reverse();
    // Each step's rows are dated by the demo clock (entries carry their real commit time).
    const step = async (label: string) => {
      for (const t of await history()) if (!when.has(t.seq)) when.set(t.seq, `${day(clock.now())} ${label}`);
    };
    const use = async (tokens: number) => {
      const eventId = `history-${randomBytes(6).toString('hex')}`;
      await usage.send({ id: eventId, account_id: id, product: 'chat', quantity: String(tokens), timestamp: new Date(clock.now()).toISOString() });
      for (let waited = 0; !(await pool.query('SELECT 1 FROM usage_ledger WHERE account_id = $1 AND event_id = $2', [id, eventId])).rowCount; waited += 100) {
        if (waited > 60_000) throw new Error('the demo history\'s usage was not rated within a minute');
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    await step('sign-up');
    await grantAllowances(order, { accounts: [id] });
    await step('month start');
    clock.advance(3_600_000);
    await use(2_000_000); // $4 of chat: the gift expires first, so it burns first
    await step('usage');
    clock.advance(8 * DAY);
    await expireGrants(order, { accounts: [id] });
    await step('the gift expires');
    clock.set(monthStartAfter(clock.now(), 1) + 600_000);
    await expireGrants(order, { accounts: [id] });
    await grantAllowances(order, { accounts: [id] });
    await step('month start');
    clock.advance(9 * DAY);
    await use(1_500_000); // $3: the oldest allowance first, last month's, rolled over
    await step('usage');
    clock.set(monthStartAfter(clock.now(), 1) + 600_000);
    await expireGrants(order, { accounts: [id] });
    await grantAllowances(order, { accounts: [id] });
    await step('month start');

    // What each grant was and what each usage row burned, from the ledger.
    const grants = new Map((await pool.query<{ grant_id: string; label: string }>(
      `SELECT e.grant_id, CASE WHEN g.kind = 'allowance' THEN 'allowance ' || substr(e.idempotency_key, 11) ELSE g.kind END AS label
         FROM ledger_entries e JOIN grants g ON g.id = e.grant_id WHERE e.account_id = $1 AND e.kind = 'grant'`, [id])).rows.map((r) => [r.grant_id, r.label]));
    const expiries = new Map((await pool.query<{ grant_id: string; expires_at: Date }>(
      'SELECT id AS grant_id, expires_at FROM grants WHERE account_id = $1', [id])).rows.map((r) => [r.grant_id, r.expires_at]));
    const burned = new Map((await pool.query<{ event_id: string; grant_split: { grant_id: string }[] }>(
      'SELECT event_id, grant_split FROM usage_ledger WHERE account_id = $1', [id])).rows.map((r) => [r.event_id, r.grant_split.map((s) => grants.get(s.grant_id)).join(' + ')]));

    const lines = [`credit history of ${id} (plan ${PLAN}: $10 signup gift for 7 days, $5 monthly allowance rolling over 1 month), on the demo clock:`];
    for (const t of await history()) {
      const sign = t.direction === 'credit' ? '+' : '-';
      let what: string;
      if (t.kind === 'usage') {
        const from = burned.get(t.event_id) ?? '';
        const rolled = from.startsWith('allowance ') && from.slice(10, 17) < t.timestamp.slice(0, 7);
        what = `usage: ${t.quantity.replace(/\.0+$/, '')} ${t.unit}s of ${t.action}, from the ${from}${rolled ? ` (rolled over into ${t.timestamp.slice(0, 7)})` : ''}`;
      } else if (t.kind === 'grant') what = `${grants.get(t.grant_id!)} granted, expires ${day(expiries.get(t.grant_id!)!.getTime())}`;
      else if (t.kind === 'expiry') what = `${grants.get(t.grant_id!)} expired unused`;
      else what = t.kind;
      lines.push(`  ${(when.get(t.seq) ?? '').padEnd(27)} ${`${sign}${t.amount}`.padStart(11)}  balance ${t.balance_after.padStart(10)}  ${what}`);
    }
    return lines;
  } finally {
    await usage.close();
    cache.stop();
    await producer.disconnect();
    redis.disconnect();
  }
}
