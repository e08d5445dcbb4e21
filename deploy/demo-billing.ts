// The demo's money coming in, through the Stripe-shaped server standing in for Stripe (its
// official client is pointed at it by STRIPE_API_BASE): a saved card, a Checkout top-up paid on
// the "page", an automatic top-up on the saved card; and the month closed by the invoicer.
import type { Logger } from '@meterstream/platform/logger';
import { systemClock, TestClock } from '@meterstream/platform/clock';
import { loadConfig } from '@meterstream/platform/config';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { addMonths, monthAt, monthStart } from '@meterstream/ledger/core/months';
import { InvoicerConfig } from '@meterstream/invoicer/config';
import { openInvoicer } from '@meterstream/invoicer/open';
import { runMonth, type RunSummary } from '@meterstream/invoicer/run';
import type { CreditsClient } from '@meterstream/ingest';
import type { StripeServer } from '../tests/support/stripe-server.js';
import { oneCall, type GateTally } from './demo-gate.js';

export type Api = <T>(method: string, path: string, body?: unknown, key?: string, headers?: Record<string, string>) => Promise<T>;

const sessionOf = (checkoutUrl: string) => new URL(checkoutUrl).pathname.split('/').at(-1)!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  for (let waited = 0; ; waited += 200) {
    const v = await probe();
    if (v !== undefined) return v;
    if (waited > ms) throw new Error(`${what}: not within ${ms / 1000} s`);
    await sleep(200);
  }
}

/** Checkout in setup mode, completed with a test visa: the account's default payment method. */
export async function saveCard(api: Api, stripe: StripeServer, accountId: string): Promise<void> {
  const setup = await api<{ checkout_url: string }>('POST', `/v1/accounts/${accountId}/payment-methods/setup`);
  const d = await stripe.completeCheckout(sessionOf(setup.checkout_url));
  if (d.status !== 200) throw new Error(`saving a card: the webhook answered ${d.status} ${d.body}`);
}

interface Balance { balance: string; spendable: string; held: string; pending_top_ups: { id: string; amount: string }[] }

/** Buys `amount` of credits through Checkout; returns the printed lines. */
export async function checkoutTopUp(api: Api, stripe: StripeServer, client: CreditsClient, tally: GateTally, accountId: string, amount: string): Promise<string[]> {
  const lines: string[] = [];
  const bal = () => api<Balance>('GET', `/v1/accounts/${accountId}/balance`);
  const before = await bal();
  const started = await api<{ id: string; state: string; checkout_url: string }>(
    'POST', `/v1/accounts/${accountId}/top-ups`, { amount }, undefined, { 'idempotency-key': `demo-top-up-${accountId}` },
  );
  const pending = await bal();
  lines.push(`  ${accountId}: balance ${before.balance}, spendable ${before.spendable}; POST /top-ups {"amount":"${amount}"} -> ${started.state}, Checkout ${started.checkout_url}`);
  lines.push(`    pending top-ups in the balance: ${pending.pending_top_ups.map((p) => p.amount).join(', ')}`);
  const d = await stripe.completeCheckout(sessionOf(started.checkout_url));
  const after = await until('the top-up credits', async () => {
    const b = await bal();
    return b.pending_top_ups.length === 0 ? b : undefined;
  });
  lines.push(`    buyer pays on the Checkout page -> signed checkout.session.completed webhook answered ${d.status} ${d.body}`);
  lines.push(`    balance ${after.balance}, spendable ${after.spendable} (purchased credits, no expiry)`);
  const refusedBefore = new Map(tally.refused);
  const ok = await oneCall(client, { id: 'x', account_id: accountId, product: 'image', quantity: '1', timestamp: new Date(systemClock.now()).toISOString() }, tally);
  lines.push(`    the next call through the gate: ${ok ? 'authorized and captured' : `refused (${[...tally.refused.keys()].filter((k) => tally.refused.get(k) !== refusedBefore.get(k)).join(', ')})`}`);
  return lines;
}

/**
 * A prepaid account with a saved card and automatic top-up on (USD 10 when the spendable balance
 * falls to 2 or below, at most once a day), spending $1 calls through the gate: the rater sees the
 * threshold crossed, the scheduler charges the card off-session, Stripe's payment_intent.succeeded
 * grants the credits. Returns the printed lines.
 */
export async function autoTopUpStory(api: Api, stripe: StripeServer, client: CreditsClient, tally: GateTally, accountId: string): Promise<string[]> {
  await saveCard(api, stripe, accountId);
  const settings = await api<{ enabled: boolean; amount: string; threshold: string; daily_max_count: number }>(
    'PUT', `/v1/accounts/${accountId}/auto-top-up`, { enabled: true, amount: '10', threshold: '2', daily_max_count: 1 },
  );
  const lines = [`  ${accountId}: $10 signup gift, card saved (Checkout in setup mode), auto top-up ${settings.enabled ? 'on' : 'off'}: ${settings.amount} when spendable <= ${settings.threshold}, at most ${settings.daily_max_count} a day`];
  const before = tally.captured;
  // $1 of chat a call (500,000 tokens at $0.002 per 1000): nine calls take the $10 gift to $1.
  for (let i = 0; i < 9; i++) await oneCall(client, { id: 'x', account_id: accountId, product: 'chat', quantity: '500000', timestamp: new Date(systemClock.now()).toISOString() }, tally);
  lines.push(`    ${tally.captured - before} calls of $1 captured through the gate`);
  type Payment = { amount: string; method: string; status: string; credits_granted: string; invoice_number: string };
  const paid = await until('the automatic top-up', async () => {
    const { payments } = await api<{ payments: Payment[] }>('GET', `/v1/accounts/${accountId}/payments`);
    return payments.find((p) => p.status === 'succeeded');
  });
  const now = await api<{ today: { count: number; amount: string }; in_flight: string | null }>('GET', `/v1/accounts/${accountId}/auto-top-up`);
  const bal = await api<Balance>('GET', `/v1/accounts/${accountId}/balance`);
  lines.push(`    automatic top-up fired: ${paid.amount} charged off-session to ${paid.method}, ${paid.status}, credits ${paid.credits_granted}, receipt ${paid.invoice_number}`);
  lines.push(`    today: ${now.today.count} automatic top-up(s), ${now.today.amount}; balance now ${bal.balance}`);
  return lines;
}

/**
 * Closes the current month for `accounts` with the invoicer's run on a clock moved to the start
 * of next month (the demo's usage is all in this month), billed through Stripe.
 */
export async function closeMonth(env: NodeJS.ProcessEnv, log: Logger, ch: ClickHouseClient, accounts: string[]): Promise<RunSummary> {
  const month = monthAt(systemClock.now());
  const clock = new TestClock(monthStart(addMonths(month, 1)) + 3_600_000);
  const invoicer = await openInvoicer(loadConfig(InvoicerConfig, env), log.child({ service: 'demo-invoicer' }), clock, { ch });
  try {
    return await runMonth(invoicer.deps, { month, accounts });
  } finally {
    await invoicer.close();
  }
}
