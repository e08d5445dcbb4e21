// `npm run demo`: the whole pipeline in one process on the embedded defaults (chDB allows one
// process per data directory, so ingest, rater and sink share this one), fed a sample workload
// through the HTTP API, then a report of what happened.
import { randomBytes } from 'node:crypto';
import { formatMicros } from '@meterstream/schemas';
import { usageTotals, usageTotalsByAccount } from '@meterstream/platform/stores/usage-ledger';
import { PRICE_LIST, workload } from '@meterstream/bench/workload';
import { startPipeline } from './pipeline.js';

const ACCOUNTS = Number(process.env.DEMO_ACCOUNTS ?? 200);
const EVENTS = Number(process.env.DEMO_EVENTS ?? 20_000);
const env = {
  ADMIN_API_KEY: randomBytes(16).toString('hex'),
  INGEST_PORT: '0',
  CHDB_PATH: '.chdb/demo',
  SINK_FETCH_MAX_WAIT_MS: '200',
  LOG_LEVEL: 'warn',
  ...process.env,
};
const { config: ingestConfig, ingest, ch, database: db, pool, stop } = await startPipeline(env, 'demo');
const say = (line = '') => process.stdout.write(`${line}\n`);

say(`meterstream demo: ingest ${ingest.url}, Kafka ${ingestConfig.KAFKA_BROKERS}, ClickHouse ${ingestConfig.CLICKHOUSE_URL ?? `chDB in-process (${ingestConfig.CHDB_PATH})`}`);
async function api<T>(method: string, path: string, body?: unknown, key = ingestConfig.ADMIN_API_KEY, headers: Record<string, string> = {}): Promise<T> {
  const res = await fetch(`${ingest.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as T;
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

for (const [product, price] of Object.entries(PRICE_LIST)) await api('PUT', `/v1/prices/${product}`, price);
const accounts: string[] = [];
for (let i = 0; i < ACCOUNTS; i++) {
  const postpaid = i % 5 === 0;
  // The default plan gives each new address its $10 signup gift, valid 7 days.
  const { id } = await api<{ id: string }>('POST', '/v1/accounts', { email: `demo-${i}-${Date.now()}@example.com`, currency: 'USD', billing_mode: postpaid ? 'postpaid' : 'prepaid' });
  // Each grant under a key of its own: a retried request would add the credits once.
  const grant = (body: unknown, key: string) => api('POST', `/v1/accounts/${id}/grants`, body, ingestConfig.ADMIN_API_KEY, { 'idempotency-key': key });
  if (i % 3 !== 0) await grant({ kind: 'purchased', amount: '25' }, 'first-purchase');
  accounts.push(id);
}
say(`created ${accounts.length} accounts (every 5th postpaid) with a $10 signup gift, two thirds with $25 purchased credits`);

const started = performance.now();
const runTag = Date.now().toString(36);
const events = [...workload({ accounts, events: EVENTS, duplicateFraction: 0.01, seed: Date.now() % 1e9, idPrefix: `demo-${runTag}` })];
let accepted = 0;
const rejected: string[] = [];
// One malformed event rides in the first request: it is rejected alone, the rest are accepted.
const bad = { id: 'bad-1', account_id: accounts[0], product: 'chat', quantity: -5, timestamp: new Date().toISOString() };
const bodies: unknown[][] = [[...events.slice(0, 999), bad]];
for (let i = 999; i < events.length; i += 1000) bodies.push(events.slice(i, i + 1000));
for (const batch of bodies) {
  const r = await api<{ accepted: string[]; rejected: { index: number; code: string; message: string }[] }>('POST', '/v1/events', batch);
  accepted += r.accepted.length;
  rejected.push(...r.rejected.map((x) => `${x.code}: ${x.message}`));
}
const distinct = new Set(events.map((e) => `${e.account_id}/${e.id}`)).size;
say(`sent ${events.length + 1} events over HTTP in batches of 1000: ${accepted} accepted, ${rejected.length} rejected (${rejected.join('; ')})`);

const sums = () => usageTotals(pool, accounts);
for (let waited = 0; (await sums()).events < BigInt(distinct); waited += 200) {
  if (waited > 120_000) throw new Error('rating did not finish within 2 minutes');
  await new Promise((r) => setTimeout(r, 200));
}
const ledger = await sums();
say(`rated ${ledger.events} distinct events in ${((performance.now() - started) / 1000).toFixed(1)} s; ${events.length - distinct} re-sent events were charged zero`);

const chTotals = async () => (await (await ch.query({
  query: `SELECT toString(count()) AS n, toString(sum(amount)) AS amount FROM ${db}.rated_events WHERE account_id IN {accounts:Array(String)}`,
  format: 'JSONEachRow', query_params: { accounts },
})).json<{ n: string; amount: string }>())[0]!;
for (let waited = 0; (await chTotals()).n !== ledger.events.toString(); waited += 200) {
  if (waited > 60_000) throw new Error('ClickHouse did not catch up within a minute');
  await new Promise((r) => setTimeout(r, 200));
}
const inCh = await chTotals();
const books = await pool.query<{ burned: bigint; postpaid: bigint; overdraft: bigint }>(
  // Expired credits (an expiry entry of minus what was left) left the grants without being burned.
  `SELECT ((SELECT coalesce(sum(amount - remaining), 0) FROM grants WHERE account_id = ANY($1))
        + (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account_id = ANY($1) AND kind = 'expiry'))::bigint AS burned,
          (SELECT coalesce(sum(amount), 0) FROM postpaid_usage WHERE account_id = ANY($1))::bigint AS postpaid,
          (SELECT coalesce(sum(overdraft), 0) FROM accounts WHERE id = ANY($1))::bigint AS overdraft`, [accounts]);
const b = books.rows[0]!;
say(`priced usage $${formatMicros(ledger.amount)} = grants burned $${formatMicros(b.burned)} + postpaid accrued $${formatMicros(b.postpaid)} + prepaid overdraft $${formatMicros(b.overdraft)}`);
say(`ClickHouse holds ${inCh.n} rated events totalling $${formatMicros(BigInt(inCh.amount))} (${inCh.amount === ledger.amount.toString() ? 'equal to' : 'DIFFERENT FROM'} the Postgres ledger)`);

say('\nbusiest accounts (balance from the API, i.e. Redis):');
const busiest = (await usageTotalsByAccount(pool, accounts)).slice(0, 5);
for (const row of busiest) {
  const bal = await api<{ billing_mode: string; balance: string; postpaid_accrued_this_month: string; source: string }>('GET', `/v1/accounts/${row.accountId}/balance`);
  say(`  ${row.accountId}  ${bal.billing_mode.padEnd(8)} ${String(row.events).padStart(6)} events  balance ${bal.balance.padStart(12)}  postpaid this month ${bal.postpaid_accrued_this_month}`);
}
const summary = await api<{ totals: unknown }>('POST', '/v1/credits/projections/usage-summary', { account_id: busiest[0]!.accountId });
say(`\nusage summary of the busiest account (30 days, from ClickHouse): ${JSON.stringify(summary.totals)}`);

await stop();
const exact = inCh.amount === (ledger.amount ?? 0n).toString() && ledger.amount === b.burned + b.postpaid + b.overdraft;
say(exact ? '\nall books balance.' : '\nBOOKS DO NOT BALANCE');
process.exit(exact ? 0 : 1);
