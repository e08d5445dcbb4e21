// `npm run demo`: the whole pipeline in one process on the embedded defaults (chDB allows one
// process per data directory, so ingest, rater and sink share this one), fed a sample workload
// through the spend gate with the producer SDK (demo-gate.ts), credits bought through Stripe
// Checkout and an automatic top-up, both on the Stripe-shaped server (demo-billing.ts), then a
// report of what happened, the month invoiced for the postpaid accounts, and one account's credit
// history over three months on the ledger's injectable clock (demo-history.ts).
import { randomBytes } from 'node:crypto';
import { formatMicros } from '@meterstream/schemas';
import { CreditsClient } from '@meterstream/ingest';
import { usageTotals, usageTotalsByAccount } from '@meterstream/platform/stores/usage-ledger';
import { PRICE_LIST, workload } from '@meterstream/bench/workload';
import { startStripeServer } from '../tests/support/stripe-server.js';
import { autoTopUpStory, checkoutTopUp, closeMonth, saveCard } from './demo-billing.js';
import { newTally, throughGate } from './demo-gate.js';
import { creditHistoryStory } from './demo-history.js';
import { startPipeline } from './pipeline.js';
import { formatSeconds, systemClock } from '@meterstream/platform/clock';

// The wall clock, read through the injectable one like every service (the history and the invoice run move their own).
const clock = systemClock;

const ACCOUNTS = Number(process.env.DEMO_ACCOUNTS ?? 100);
const EVENTS = Number(process.env.DEMO_EVENTS ?? 4_000);
// Stripe is the Stripe-shaped server in this process; its webhooks go to the ingest started below.
const stripe = await startStripeServer();
const env = {
  ...stripe.env,
  ADMIN_API_KEY: randomBytes(16).toString('hex'),
  INGEST_PORT: '0',
  CHDB_PATH: '.chdb/demo',
  SINK_FETCH_MAX_WAIT_MS: '200',
  LOG_LEVEL: 'warn',
  ...process.env,
};
const { config: ingestConfig, ingest, ch, database: db, pool, log, stop } = await startPipeline(env, 'demo');
const say = (line = '') => process.stdout.write(`${line}\n`);
stripe.setWebhookUrl(`${ingest.url}/v1/stripe/webhook`);

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
const setupStarted = clock.now();
const accounts: string[] = [];
const postpaidAccounts: string[] = [];
for (let i = 0; i < ACCOUNTS; i++) {
  const postpaid = i % 5 === 0;
  // The default plans give each new address its $10 signup gift, valid 7 days, and postpaid accounts a $100 monthly limit.
  const { id } = await api<{ id: string }>('POST', '/v1/accounts', { email: `demo-${i}-${clock.now()}@example.com`, currency: 'USD', billing_mode: postpaid ? 'postpaid' : 'prepaid' });
  // Each grant under a key of its own: a retried request would add the credits once.
  const grant = (body: unknown, key: string) => api('POST', `/v1/accounts/${id}/grants`, body, ingestConfig.ADMIN_API_KEY, { 'idempotency-key': key });
  if (i % 3 !== 0) await grant({ kind: 'purchased', amount: '25' }, 'first-purchase');
  // Past its free credits a postpaid account needs a card (seed 001): saved through Checkout in setup mode.
  if (postpaid) await saveCard(api, stripe, id);
  accounts.push(id);
  if (postpaid) postpaidAccounts.push(id);
}
say(`created ${accounts.length} accounts in ${formatSeconds(clock.now() - setupStarted)} (every 5th postpaid, $100 monthly limit, card saved through Checkout) with a $10 signup gift, two thirds with $25 purchased credits`);

// Every call through the gate: the SDK's withCredits authorizes a hold for the call's price, runs
// the work, captures the hold with the usage event, or releases it when the work fails.
const client = new CreditsClient({ baseUrl: ingest.url, apiKey: ingestConfig.ADMIN_API_KEY });
const tally = newTally();
const started = clock.now();
const runTag = clock.now().toString(36);
await throughGate(client, workload({ accounts, events: EVENTS, duplicateFraction: 0, seed: clock.now() % 1e9, idPrefix: `demo-${runTag}` }), tally);
const refusals = [...tally.refused].map(([code, n]) => `${n} ${code}`).join(', ') || 'none';
say(`${tally.calls} calls through the gate (POST /v1/authorize, then the usage event capturing the hold) in ${formatSeconds(clock.now() - started)}:`);
say(`  ${tally.captured} ran and were captured; ${tally.released} failed and were released at zero cost; refused: ${refusals}${tally.errors.length ? `; ${tally.errors.length} errors (${tally.errors.slice(0, 3).join('; ')})` : ''}`);
say(`  ${tally.paymentRequiredBy.size} prepaid accounts stopped at zero (402 PAYMENT_REQUIRED)`);

say('\ncredits bought through Stripe Checkout by the prepaid account refused most often:');
const mostRefused = [...tally.paymentRequiredBy].sort((a, b) => b[1] - a[1])[0]?.[0] ?? accounts[1]!;
for (const line of await checkoutTopUp(api, stripe, client, tally, mostRefused, '50')) say(line);

say('\nautomatic top-up:');
const { id: autoAccount } = await api<{ id: string }>('POST', '/v1/accounts', { email: `demo-auto-${clock.now()}@example.com`, currency: 'USD', billing_mode: 'prepaid' });
accounts.push(autoAccount);
for (const line of await autoTopUpStory(api, stripe, client, tally, autoAccount)) say(line);

const sums = () => usageTotals(pool, accounts);
for (let waited = 0; (await sums()).events < BigInt(tally.captured); waited += 200) {
  if (waited > 120_000) throw new Error('rating did not finish within 2 minutes');
  await new Promise((r) => setTimeout(r, 200));
}
const ledger = await sums();
const limited = (await usageTotalsByAccount(pool, postpaidAccounts))[0]!.accountId;
const limitedNow = await api<{ spent_this_month: string; postpaid_accrued_this_month: string }>('GET', `/v1/accounts/${limited}/balance`);
const limitRefusals = tally.refused.get('MONTHLY_LIMIT_REACHED') ?? 0;
say(`\nthe busiest postpaid account, ${limited}, ${limitRefusals > 0 ? 'stopped at' : 'stayed under'} its $100 limit: ${limitedNow.postpaid_accrued_this_month} postpaid this month after its $10 free credits (${limitRefusals} calls refused MONTHLY_LIMIT_REACHED over all postpaid accounts)`);
say(`\nrated ${ledger.events} captured calls, ${formatSeconds(clock.now() - started)} after the first call`);

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
// The gate's promise: no prepaid overdraft, no postpaid month past its limit.
const gate = (await pool.query<{ most: bigint | null; over: string }>(
  `SELECT max(p.amount)::bigint AS most, count(*) FILTER (WHERE p.amount > coalesce(a.monthly_limit, pl.default_monthly_limit))::text AS over
     FROM postpaid_usage p JOIN accounts a ON a.id = p.account_id JOIN plans pl ON pl.id = a.plan_id WHERE p.account_id = ANY($1)`, [postpaidAccounts])).rows[0]!;
const gateHeld = b.overdraft === 0n && gate.over === '0';
say(`money past the gate: prepaid overdraft $${formatMicros(b.overdraft)}, largest postpaid month $${formatMicros(gate.most ?? 0n)}, ${gate.over} postpaid accounts over their limit`);
say(`ClickHouse holds ${inCh.n} rated events totalling $${formatMicros(BigInt(inCh.amount))} (${inCh.amount === ledger.amount.toString() ? 'equal to' : 'DIFFERENT FROM'} the Postgres ledger)`);

say('\nbusiest accounts of each mode (balance from the API, i.e. Redis):');
const byUsage = await usageTotalsByAccount(pool, accounts);
const isPostpaid = new Set(postpaidAccounts);
const busiest = [...byUsage.filter((r) => isPostpaid.has(r.accountId)).slice(0, 3), ...byUsage.filter((r) => !isPostpaid.has(r.accountId)).slice(0, 3)];
for (const row of busiest) {
  const bal = await api<{ billing_mode: string; balance: string; spendable: string; postpaid_accrued_this_month: string }>('GET', `/v1/accounts/${row.accountId}/balance`);
  const refused = bal.billing_mode === 'prepaid' ? `${tally.paymentRequiredBy.get(row.accountId) ?? 0} x 402` : '';
  say(`  ${row.accountId}  ${bal.billing_mode.padEnd(8)} ${String(row.events).padStart(6)} events  balance ${bal.balance.padStart(10)}  spendable ${bal.spendable.padStart(10)}  postpaid this month ${bal.postpaid_accrued_this_month.padStart(11)}  ${refused}`);
}
const summary = await api<{ totals: unknown }>('POST', '/v1/credits/projections/usage-summary', { account_id: busiest[0]!.accountId });
say(`\nusage summary of the busiest account (30 days, from ClickHouse): ${JSON.stringify(summary.totals)}`);

// The demo's usage is all in this month: the invoicer closes it on a clock moved to the 1st of the next.
const run = await closeMonth(env, log, ch, postpaidAccounts);
say(`\ninvoicer run for ${run.month} (on a clock moved to the 1st of next month), postpaid accounts: ${run.accounts} accounts, ${run.invoiced} invoiced, ${run.noCharge} no charge, ${run.needsReview.length} held for review, ${run.billed} billed through Stripe (${run.failedPayments} failed payments), due ${JSON.stringify(run.totals)}`);
type InvoiceDetail = { id: string; number: string | null; state: string; month: string; subtotal: string; covered_by_credits: string; total: string; amount_due: string; paid_at: string | null;
  lines: { description: string; quantity: string; unit: string | null; unit_price: string; per: number; amount: string; covered_by_credits: string; due: string }[] };
const { invoices } = await api<{ invoices: { id: string }[] }>('GET', `/v1/accounts/${limited}/invoices`);
let invoice = await api<InvoiceDetail>('GET', `/v1/accounts/${limited}/invoices/${invoices[0]!.id}`);
// Paid when Stripe's invoice.paid webhook has come back.
for (let waited = 0; invoice.state !== 'paid' && waited < 10_000; waited += 200) {
  await new Promise((r) => setTimeout(r, 200));
  invoice = await api<InvoiceDetail>('GET', `/v1/accounts/${limited}/invoices/${invoice.id}`);
}
say(`invoice ${invoice.number ?? '(no number)'} of ${limited} for ${invoice.month}: ${invoice.state}${invoice.paid_at ? ` at ${invoice.paid_at}` : ''}`);
for (const l of invoice.lines) {
  say(`  ${l.description.padEnd(34)} ${l.quantity.padStart(16)} ${(l.unit ?? '').padEnd(8)} x ${l.unit_price} per ${l.per}  = ${l.amount.padStart(11)}  credits -${l.covered_by_credits}  due ${l.due}`);
}
say(`  subtotal ${invoice.subtotal}, covered by credits ${invoice.covered_by_credits}, total ${invoice.total}, amount due ${invoice.amount_due}`);

say('');
for (const line of await creditHistoryStory({ api, config: ingestConfig, pool, log })) say(line);

await stop();
await stripe.close();
const exact = inCh.amount === (ledger.amount ?? 0n).toString() && ledger.amount === b.burned + b.postpaid + b.overdraft;
say(exact ? '\nall books balance.' : '\nBOOKS DO NOT BALANCE');
if (!gateHeld) say('MONEY WAS SPENT PAST THE GATE');
process.exit(exact && gateHeld ? 0 : 1);
