import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { createStripe } from '@meterstream/platform/stripe';
import { WriteOrder, type WriteOrderDeps } from '@meterstream/ledger/write-order';
import type { TestStack } from '../../tests/support/stack.js';
import type { StripeServer } from '../../tests/support/stripe-server.js';
import type { InvoicerDeps } from '../src/run.js';

/** The stack's write order on a test clock. */
export function orderOn(stack: TestStack, clock: TestClock): WriteOrder {
  const deps = (stack.ledger as unknown as { deps: WriteOrderDeps }).deps;
  return new WriteOrder({ ...deps, now: () => clock.now() });
}

export function invoicerOn(
  stack: TestStack, ch: { ch: ClickHouseClient; database: string }, clock: TestClock, stripe?: StripeServer, extra: Partial<InvoicerDeps> = {},
): InvoicerDeps {
  return {
    order: orderOn(stack, clock), ch: ch.ch, database: ch.database, log: createLogger('invoicer-test', 'fatal'), issuer: `T${randomUUID().slice(0, 6)}`,
    ...(stripe ? { stripe: createStripe({ secretKey: stripe.secretKey, apiBase: stripe.url }) } : {}),
    ...extra,
  };
}

/** A saved card on the account's Stripe customer, as Checkout in setup mode leaves it. */
export async function saveCard(stack: TestStack, server: StripeServer, accountId: string, card?: string): Promise<string> {
  const stripe = createStripe({ secretKey: server.secretKey, apiBase: server.url });
  const customer = await stripe.customers.create({ metadata: { account_id: accountId } });
  const session = await stripe.checkout.sessions.create({ mode: 'setup', customer: customer.id, success_url: 'https://example.com/ok', currency: 'usd' });
  await server.completeCheckout(session.id, { ...(card ? { card } : {}), send: false });
  const intent = server.objects.get(session.setup_intent as string)!;
  const pm = intent.payment_method as string;
  await stack.pool.query('UPDATE accounts SET stripe_customer_id = $2, payment_method = $3 WHERE id = $1', [accountId, customer.id, pm]);
  return pm;
}
