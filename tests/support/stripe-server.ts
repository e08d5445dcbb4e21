import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { systemClock, type Clock } from '@meterstream/platform/clock';

// A Stripe-shaped HTTP server for tests and the demo: only the endpoints meterstream calls, with
// Stripe's form-encoded requests, JSON objects and ids, its Idempotency-Key rules and error
// bodies; and, standing in for the buyer on the Checkout page, ways to pay, decline or let a
// session expire, after which it POSTs the webhook to meterstream signed as Stripe signs it.
// The official client reaches it with its host, port and protocol options (STRIPE_API_BASE).

/** Stripe's test cards (docs.stripe.com/testing) this server knows. */
export const CARDS = {
  visa: '4242424242424242',
  mastercard: '5555555555554444',
  /** Declined when entered: card_declined, generic_decline. */
  declined: '4000000000000002',
  /** Declined when entered: card_declined, insufficient_funds. */
  insufficientFunds: '4000000000009995',
  /** Saves, but every later off-session charge is declined. */
  declinesLater: '4000000000000341',
  /** Saves, but off-session charges need the cardholder: authentication_required. */
  needsAuthentication: '4000002760003184',
} as const;

type Params = Record<string, unknown>;
type StripeObject = Record<string, unknown> & { id: string };

export interface Delivery {
  event: Stripe.Event;
  /** meterstream's answer; null: not sent (send: false), for a test that sends it itself (deliver). */
  status: number | null;
  body: string | null;
}

/** send: false creates the event without sending it. */
export interface Send {
  send?: boolean;
}

export interface StripeServerOptions {
  /** Where events are POSTed (meterstream's /v1/stripe/webhook); settable later with setWebhookUrl. */
  webhookUrl?: string;
  /** The endpoint's signing secret; random by default. */
  webhookSecret?: string;
  /** The secret key requests must carry; random by default. */
  secretKey?: string;
  /** Stamps objects and signatures; give it meterstream's clock when that one is a test clock. */
  clock?: Clock;
  port?: number;
}

/** A Stripe API error: the HTTP status and Stripe's error object. */
class StripeFailure extends Error {
  constructor(readonly status: number, readonly error: Record<string, unknown>) {
    super(String(error.message));
  }
}

const invalid = (message: string, extra: Record<string, unknown> = {}) =>
  new StripeFailure(400, { type: 'invalid_request_error', message, ...extra });
const missing = (param: string) => invalid(`Missing required param: ${param}.`, { code: 'parameter_missing', param });
const noSuch = (what: string, id: string, param = 'id') =>
  new StripeFailure(404, { type: 'invalid_request_error', code: 'resource_missing', message: `No such ${what}: '${id}'`, param });

/** A declined card as Stripe reports it (HTTP 402, type card_error). */
export class CardDeclined extends Error {
  constructor(readonly code: string, readonly declineCode: string | undefined) {
    super(`card declined: ${declineCode ?? code}`);
  }
}

const alnum = (n: number) => {
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  return [...randomBytes(n)].map((b) => chars[b % chars.length]).join('');
};

/** Stripe's form encoding (a[b][0][c]=v, as qs writes it) into nested objects and arrays. */
export function parseForm(text: string): Params {
  const root: Params = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const path = key.replace(/\]/g, '').split('[');
    let node: Params = root;
    path.forEach((part, i) => {
      if (i === path.length - 1) node[part] = value;
      else node = (node[part] ??= {}) as Params;
    });
  }
  const arrays = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    const o = v as Params;
    const keys = Object.keys(o);
    if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) return keys.sort((a, b) => Number(a) - Number(b)).map((k) => arrays(o[k]));
    return Object.fromEntries(keys.map((k) => [k, arrays(o[k])]));
  };
  return arrays(root) as Params;
}

/** Equal params give equal text (key order aside): what an idempotency key is compared on. */
const canonical = (v: unknown): string =>
  typeof v !== 'object' || v === null ? JSON.stringify(v)
    : Array.isArray(v) ? `[${v.map(canonical).join(',')}]`
    : `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Params)[k])}`).join(',')}}`;

const str = (p: Params, name: string): string | undefined => (typeof p[name] === 'string' ? (p[name] as string) : undefined);
const obj = (p: Params, name: string): Params => (typeof p[name] === 'object' && p[name] !== null ? (p[name] as Params) : {});
const int = (p: Params, name: string): number | undefined => {
  const v = str(p, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw invalid(`Invalid integer: ${v}`, { param: name });
  return Number(v);
};

const brandOf = (number: string) => (number.startsWith('4') ? 'visa' : /^5[1-5]/.test(number) ? 'mastercard' : /^3[47]/.test(number) ? 'amex' : 'unknown');

export interface StripeServer {
  /** http://127.0.0.1:<port>: STRIPE_API_BASE. */
  url: string;
  secretKey: string;
  webhookSecret: string;
  /** What meterstream needs to talk to this server. */
  env: { STRIPE_API_BASE: string; STRIPE_SECRET_KEY: string; STRIPE_WEBHOOK_SECRET: string };
  setWebhookUrl(url: string): void;
  /** Every object, by id (customers, sessions, payment intents, setup intents, payment methods). */
  objects: Map<string, StripeObject>;
  /** Every event created, oldest first. */
  events: Stripe.Event[];
  /** The API requests received, oldest first. */
  requests: { method: string; path: string; idempotencyKey: string | undefined }[];
  /**
   * The buyer completes the Checkout page with `card` (a visa by default). Payment mode: paid, or
   * with `delayed` completed unpaid (a bank debit) until settleDelayed; setup mode: the card saved.
   * A declining card throws CardDeclined and leaves the session open, as the page would.
   * Answers the checkout.session.completed delivery.
   */
  completeCheckout(sessionId: string, opts?: { card?: string; delayed?: boolean } & Send): Promise<Delivery>;
  /** The delayed payment of a completed session succeeds or fails (checkout.session.async_payment_*). */
  settleDelayed(sessionId: string, outcome: 'succeeded' | 'failed', opts?: Send): Promise<Delivery>;
  /** The session expires unpaid (checkout.session.expired). */
  expireCheckout(sessionId: string, opts?: Send): Promise<Delivery>;
  /** The next `n` API requests answer 429 rate_limit, as Stripe does past its rate limits. */
  rateLimitNext(n: number): void;
  /** The customer pays an open invoice later with `card` (a visa by default); answers the invoice.paid delivery. */
  payInvoice(invoiceId: string, opts?: { card?: string } & Send): Promise<Delivery>;
  /** Sends an event (again), signed with `secret` (another one forges it) at `timestampS`. */
  deliver(event: Stripe.Event, opts?: { secret?: string; timestampS?: number }): Promise<Delivery>;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 (a free port by default). */
export async function startStripeServer(opts: StripeServerOptions = {}): Promise<StripeServer> {
  const clock = opts.clock ?? systemClock;
  const secretKey = opts.secretKey ?? `sk_test_${alnum(24)}`;
  const webhookSecret = opts.webhookSecret ?? `whsec_${alnum(32)}`;
  let webhookUrl = opts.webhookUrl;
  const objects = new Map<string, StripeObject>();
  const events: Stripe.Event[] = [];
  const requests: StripeServer['requests'] = [];
  const idempotent = new Map<string, { route: string; params: string; status: number; body: string }>();
  const cardOf = new Map<string, string>(); // payment method id -> card number
  let rateLimited = 0;
  const seconds = () => Math.floor(clock.now() / 1000);
  let base = '';

  const get = (prefix: string, id: string, what: string, param = 'id'): StripeObject => {
    const o = objects.get(id);
    if (!o || !id.startsWith(prefix)) throw noSuch(what, id, param);
    return o;
  };
  const put = <T extends StripeObject>(o: T): T => {
    objects.set(o.id, o);
    return o;
  };

  function paymentMethod(card: string, customer: string | null): StripeObject {
    if (card === CARDS.declined) throw new CardDeclined('card_declined', 'generic_decline');
    if (card === CARDS.insufficientFunds) throw new CardDeclined('card_declined', 'insufficient_funds');
    const pm = put({
      id: `pm_${alnum(24)}`, object: 'payment_method', type: 'card', customer, created: seconds(), livemode: false, metadata: {},
      billing_details: { email: null, name: null }, card: { brand: brandOf(card), last4: card.slice(-4), exp_month: 12, exp_year: 2034, funding: 'credit', country: 'US' },
    });
    cardOf.set(pm.id, card);
    return pm;
  }

  function paymentIntent(p: { amount: number; currency: string; customer: string | null; metadata: Params; pm: string | null; status: string }): StripeObject {
    return put({
      id: `pi_${alnum(24)}`, object: 'payment_intent', amount: p.amount, amount_received: p.status === 'succeeded' ? p.amount : 0, currency: p.currency,
      customer: p.customer, metadata: p.metadata, payment_method: p.pm, status: p.status, created: seconds(), livemode: false,
      client_secret: `pi_${alnum(24)}_secret_${alnum(24)}`, last_payment_error: null, latest_charge: p.status === 'succeeded' ? `ch_${alnum(24)}` : null,
    });
  }

  function event(type: string, object: StripeObject): Stripe.Event {
    const e = {
      id: `evt_${alnum(24)}`, object: 'event', api_version: Stripe.API_VERSION, created: seconds(), type, livemode: false, pending_webhooks: 1,
      request: { id: null, idempotency_key: null }, data: { object: structuredClone(object) },
    } as unknown as Stripe.Event;
    events.push(e);
    return e;
  }

  async function deliver(e: Stripe.Event, o: { secret?: string; timestampS?: number } = {}): Promise<Delivery> {
    if (webhookUrl === undefined) throw new Error('the Stripe server has no webhook URL: setWebhookUrl first');
    const payload = JSON.stringify(e, null, 2);
    const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: o.secret ?? webhookSecret, timestamp: o.timestampS ?? seconds() });
    const res = await fetch(webhookUrl, {
      method: 'POST', body: payload,
      headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signature, 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' },
    });
    return { event: e, status: res.status, body: await res.text() };
  }

  const session = (id: string) => get('cs_', id, 'checkout.session', 'session');

  function createSession(p: Params): StripeObject {
    const mode = str(p, 'mode');
    if (mode === undefined) throw missing('mode');
    if (mode !== 'payment' && mode !== 'setup') throw invalid(`Invalid mode: must be one of payment, setup or subscription`, { param: 'mode' });
    const successUrl = str(p, 'success_url');
    if (successUrl === undefined) throw missing('success_url');
    const customer = str(p, 'customer') ?? null;
    if (customer !== null) get('cus_', customer, 'customer', 'customer');
    let amount: number | null = null;
    let currency = str(p, 'currency')?.toLowerCase() ?? null;
    if (mode === 'payment') {
      const items = p.line_items;
      if (!Array.isArray(items) || items.length === 0) throw missing('line_items');
      amount = 0;
      for (const [i, item] of (items as Params[]).entries()) {
        const price = obj(item, 'price_data');
        const unit = int(price, 'unit_amount');
        if (unit === undefined) throw missing(`line_items[${i}][price_data][unit_amount]`);
        currency = str(price, 'currency')?.toLowerCase() ?? null;
        if (currency === null) throw missing(`line_items[${i}][price_data][currency]`);
        amount += unit * (int(item, 'quantity') ?? 1);
      }
      if (amount < 50) throw invalid('The Checkout Session\'s total amount due must add up to at least $0.50 usd', { param: 'line_items' });
    }
    const id = `cs_test_${alnum(58)}`;
    const created = seconds();
    const setupIntent = mode === 'setup'
      ? put({ id: `seti_${alnum(24)}`, object: 'setup_intent', customer, status: 'requires_payment_method', payment_method: null, usage: 'off_session', metadata: obj(obj(p, 'setup_intent_data'), 'metadata'), created, livemode: false }).id
      : null;
    return put({
      id, object: 'checkout.session', mode, status: 'open', payment_status: mode === 'setup' ? 'no_payment_required' : 'unpaid',
      amount_subtotal: amount, amount_total: amount, currency, customer, client_reference_id: str(p, 'client_reference_id') ?? null,
      metadata: obj(p, 'metadata'), payment_intent: null, setup_intent: setupIntent, success_url: successUrl, cancel_url: str(p, 'cancel_url') ?? null,
      url: `${base}/c/pay/${id}`, created, expires_at: created + 24 * 3600, livemode: false, ui_mode: 'hosted', payment_method_types: ['card'],
      payment_intent_data: obj(p, 'payment_intent_data'),
    });
  }

  function expandPaymentMethod(o: StripeObject, expand: unknown): StripeObject {
    const wanted = Array.isArray(expand) ? expand : [];
    if (!wanted.includes('payment_method') || typeof o.payment_method !== 'string') return o;
    return { ...o, payment_method: objects.get(o.payment_method) ?? null };
  }

  /** Off-session charge of a saved card (automatic top-ups). */
  function createPaymentIntent(p: Params): StripeObject {
    const amount = int(p, 'amount');
    if (amount === undefined) throw missing('amount');
    const currency = str(p, 'currency');
    if (currency === undefined) throw missing('currency');
    const customer = str(p, 'customer') ?? null;
    if (customer !== null) get('cus_', customer, 'customer', 'customer');
    const pm = str(p, 'payment_method') ?? null;
    if (pm !== null) get('pm_', pm, 'payment_method', 'payment_method');
    const confirm = str(p, 'confirm') === 'true';
    if (!confirm) return paymentIntent({ amount, currency, customer, metadata: obj(p, 'metadata'), pm, status: 'requires_confirmation' });
    if (pm === null) throw missing('payment_method');
    const card = cardOf.get(pm);
    const failure = card === CARDS.declinesLater ? { code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' }
      : card === CARDS.needsAuthentication ? { code: 'authentication_required', decline_code: 'authentication_required', message: 'Your card was declined. This transaction requires authentication.' }
      : null;
    const intent = paymentIntent({ amount, currency, customer, metadata: obj(p, 'metadata'), pm, status: failure ? 'requires_payment_method' : 'succeeded' });
    if (failure) {
      const error = { type: 'card_error', ...failure, payment_method: objects.get(pm), doc_url: `https://docs.stripe.com/error-codes/${failure.code.replace(/_/g, '-')}` };
      intent.status = failure.code === 'authentication_required' ? 'requires_action' : 'requires_payment_method';
      intent.last_payment_error = error;
      void deliverLater(event('payment_intent.payment_failed', intent));
      throw new StripeFailure(402, { ...error, payment_intent: intent });
    }
    void deliverLater(event('payment_intent.succeeded', intent));
    return intent;
  }

  /** A refund of a succeeded PaymentIntent, at most what it received less earlier refunds. */
  function createRefund(p: Params): StripeObject {
    const intentId = str(p, 'payment_intent');
    if (intentId === undefined) throw missing('payment_intent');
    const intent = get('pi_', intentId, 'payment_intent', 'payment_intent');
    if (intent.status !== 'succeeded') throw invalid(`This PaymentIntent (${intentId}) does not have a successful charge to refund.`, { code: 'charge_not_refundable' });
    const refunded = [...objects.values()].filter((o) => o.object === 'refund' && o.payment_intent === intentId).reduce((sum, o) => sum + (o.amount as number), 0);
    const amount = int(p, 'amount') ?? (intent.amount_received as number) - refunded;
    if (amount <= 0 || refunded + amount > (intent.amount_received as number)) {
      throw invalid(`Refund amount (${amount}) is greater than unrefunded amount on charge (${(intent.amount_received as number) - refunded})`, { code: 'amount_too_large', param: 'amount' });
    }
    return put({
      id: `re_${alnum(24)}`, object: 'refund', amount, currency: intent.currency, payment_intent: intentId, charge: intent.latest_charge,
      status: 'succeeded', metadata: obj(p, 'metadata'), created: seconds(),
    });
  }

  // Stripe sends events after answering the request that caused them.
  const deliverLater = (e: Stripe.Event) => new Promise<void>((resolve) => {
    setImmediate(() => {
      if (webhookUrl === undefined) return resolve();
      deliver(e).catch(() => undefined).finally(resolve);
    });
  });

  function route(method: string, path: string, p: Params): StripeObject {
    let m: RegExpExecArray | null;
    if (method === 'POST' && path === '/v1/customers') {
      return put({
        id: `cus_${alnum(14)}`, object: 'customer', email: str(p, 'email') ?? null, name: str(p, 'name') ?? null, metadata: obj(p, 'metadata'),
        invoice_settings: { default_payment_method: null }, created: seconds(), livemode: false,
      });
    }
    if ((m = /^\/v1\/customers\/([^/]+)$/.exec(path))) {
      const c = get('cus_', m[1]!, 'customer');
      if (method === 'GET') return c;
      if (method === 'POST') {
        const settings = obj(p, 'invoice_settings');
        const pm = str(settings, 'default_payment_method');
        if (pm !== undefined) get('pm_', pm, 'payment_method', 'invoice_settings[default_payment_method]');
        return put({
          ...c, ...(str(p, 'email') !== undefined ? { email: str(p, 'email') } : {}), metadata: { ...(c.metadata as Params), ...obj(p, 'metadata') },
          invoice_settings: { ...(c.invoice_settings as Params), ...(pm !== undefined ? { default_payment_method: pm } : {}) },
        });
      }
    }
    if (method === 'POST' && path === '/v1/checkout/sessions') return createSession(p);
    if (method === 'GET' && (m = /^\/v1\/checkout\/sessions\/([^/]+)$/.exec(path))) return session(m[1]!);
    if (method === 'POST' && (m = /^\/v1\/checkout\/sessions\/([^/]+)\/expire$/.exec(path))) {
      const s = session(m[1]!);
      if (s.status !== 'open') throw invalid(`Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${String(s.status)}".`);
      expire(s);
      return s;
    }
    if (method === 'POST' && path === '/v1/payment_intents') return createPaymentIntent(p);
    if (method === 'POST' && path === '/v1/refunds') return createRefund(p);
    if (method === 'POST' && (m = /^\/v1\/payment_intents\/([^/]+)\/cancel$/.exec(path))) {
      const intent = get('pi_', m[1]!, 'payment_intent', 'intent');
      if (!['requires_payment_method', 'requires_confirmation', 'requires_action', 'processing'].includes(intent.status as string)) {
        throw invalid(`You cannot cancel this PaymentIntent because it has a status of ${String(intent.status)}.`, { code: 'payment_intent_unexpected_state' });
      }
      Object.assign(intent, { status: 'canceled', canceled_at: seconds(), cancellation_reason: str(p, 'cancellation_reason') ?? null });
      void deliverLater(event('payment_intent.canceled', intent));
      return intent;
    }
    if (method === 'GET' && (m = /^\/v1\/payment_intents\/([^/]+)$/.exec(path))) return expandPaymentMethod(get('pi_', m[1]!, 'payment_intent', 'intent'), p.expand);
    if (method === 'GET' && (m = /^\/v1\/setup_intents\/([^/]+)$/.exec(path))) return expandPaymentMethod(get('seti_', m[1]!, 'setup_intent', 'intent'), p.expand);
    if (method === 'GET' && (m = /^\/v1\/payment_methods\/([^/]+)$/.exec(path))) return get('pm_', m[1]!, 'payment_method', 'payment_method');
    if (method === 'POST' && path === '/v1/invoices') return createInvoice(p);
    if (method === 'GET' && (m = /^\/v1\/invoices\/([^/]+)$/.exec(path))) return get('in_', m[1]!, 'invoice', 'invoice');
    if (method === 'POST' && (m = /^\/v1\/invoices\/([^/]+)\/finalize$/.exec(path))) return finalizeInvoice(get('in_', m[1]!, 'invoice', 'invoice'));
    if (method === 'POST' && (m = /^\/v1\/invoices\/([^/]+)\/pay$/.exec(path))) return chargeInvoice(get('in_', m[1]!, 'invoice', 'invoice'), str(p, 'payment_method'));
    if (method === 'POST' && path === '/v1/invoiceitems') return createInvoiceItem(p);
    throw new StripeFailure(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.` });
  }

  // Invoices (the invoicer): a draft collects its items, is finalized (open, numbered) and paid
  // with the customer's default card; a decline leaves it open with invoice.payment_failed.
  function createInvoice(p: Params): StripeObject {
    const customer = str(p, 'customer');
    if (customer === undefined) throw missing('customer');
    get('cus_', customer, 'customer', 'customer');
    const pm = str(p, 'default_payment_method') ?? null;
    if (pm !== null) get('pm_', pm, 'payment_method', 'default_payment_method');
    return put({
      id: `in_${alnum(24)}`, object: 'invoice', customer, currency: str(p, 'currency') ?? 'usd', status: 'draft', number: null,
      collection_method: str(p, 'collection_method') ?? 'charge_automatically', auto_advance: str(p, 'auto_advance') === 'true',
      default_payment_method: pm, description: str(p, 'description') ?? null, metadata: obj(p, 'metadata'), lines: { object: 'list', data: [] },
      amount_due: 0, amount_paid: 0, amount_remaining: 0, total: 0, subtotal: 0, attempt_count: 0, paid: false, created: seconds(), livemode: false,
    });
  }

  function createInvoiceItem(p: Params): StripeObject {
    const customer = str(p, 'customer');
    if (customer === undefined) throw missing('customer');
    get('cus_', customer, 'customer', 'customer');
    const amount = int(p, 'amount');
    if (amount === undefined) throw missing('amount');
    const invoiceId = str(p, 'invoice') ?? null;
    const item = put({
      id: `ii_${alnum(24)}`, object: 'invoiceitem', customer, amount, currency: str(p, 'currency') ?? 'usd', description: str(p, 'description') ?? null,
      invoice: invoiceId, metadata: obj(p, 'metadata'), date: seconds(), livemode: false,
    });
    if (invoiceId !== null) {
      const inv = get('in_', invoiceId, 'invoice', 'invoice');
      if (inv.status !== 'draft') throw invalid(`You can only add invoice items to draft invoices; ${invoiceId} is ${String(inv.status)}.`, { param: 'invoice' });
      (inv.lines as { data: unknown[] }).data.push({ id: `il_${alnum(24)}`, object: 'line_item', amount, currency: item.currency, description: item.description, invoice_item: item.id });
      for (const k of ['amount_due', 'amount_remaining', 'total', 'subtotal']) inv[k] = (inv[k] as number) + amount;
    }
    return item;
  }

  let invoiceNumber = 0;
  function finalizeInvoice(inv: StripeObject): StripeObject {
    if (inv.status !== 'draft') throw invalid(`This invoice is already finalized, you can't re-finalize a non-draft invoice.`);
    Object.assign(inv, { status: 'open', number: `STRIPE-${String(++invoiceNumber).padStart(4, '0')}`, finalized_at: seconds() });
    void deliverLater(event('invoice.finalized', inv));
    return inv;
  }

  function chargeInvoice(inv: StripeObject, pmParam: string | undefined): StripeObject {
    if (inv.status === 'paid') throw invalid('Invoice is already paid');
    if (inv.status !== 'open') throw invalid(`You can only pay an open invoice; this one is ${String(inv.status)}.`);
    const customer = objects.get(inv.customer as string)!;
    const pm = pmParam ?? (inv.default_payment_method as string | null) ?? ((customer.invoice_settings as Params).default_payment_method as string | null);
    if (pm === null || pm === undefined) throw invalid('The invoice has no payment method to charge: attach one to the customer or the invoice.');
    const card = cardOf.get(pm);
    inv.attempt_count = (inv.attempt_count as number) + 1;
    if (card === CARDS.declinesLater || card === CARDS.needsAuthentication) {
      const error = card === CARDS.declinesLater
        ? { code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' }
        : { code: 'authentication_required', decline_code: 'authentication_required', message: 'Your card was declined. This transaction requires authentication.' };
      void deliverLater(event('invoice.payment_failed', inv));
      throw new StripeFailure(402, { type: 'card_error', ...error, doc_url: `https://docs.stripe.com/error-codes/${error.code.replace(/_/g, '-')}` });
    }
    const intent = paymentIntent({ amount: inv.amount_due as number, currency: inv.currency as string, customer: inv.customer as string, metadata: {}, pm, status: 'succeeded' });
    Object.assign(inv, { status: 'paid', paid: true, amount_paid: inv.amount_due, amount_remaining: 0, payment_intent: intent.id, status_transitions: { paid_at: seconds() } });
    void deliverLater(event('invoice.paid', inv));
    return inv;
  }

  /** The customer pays an open invoice later with `card` (after a decline): invoice.paid. */
  async function payInvoice(invoiceId: string, o: { card?: string } & Send = {}): Promise<Delivery> {
    const inv = get('in_', invoiceId, 'invoice', 'invoice');
    const pm = paymentMethod(o.card ?? CARDS.visa, inv.customer as string);
    const before = events.length;
    chargeInvoice(inv, pm.id);
    return sent(events[before]!, o);
  }

  function expire(s: StripeObject): Stripe.Event {
    s.status = 'expired';
    s.url = null;
    const e = event('checkout.session.expired', s);
    void deliverLater(e);
    return e;
  }

  function api(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const url = new URL(req.url ?? '/', 'http://stripe.local');
    const method = req.method ?? 'GET';
    const key = req.headers['idempotency-key'] as string | undefined;
    requests.push({ method, path: url.pathname, idempotencyKey: key });
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_${alnum(14)}`, 'stripe-version': Stripe.API_VERSION, ...headers });
      res.end(body);
    };
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!auth) {
      return send(401, JSON.stringify({ error: { type: 'invalid_request_error', message: 'You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. \'Authorization: Bearer YOUR_SECRET_KEY\').' } }));
    }
    if (auth[1] !== secretKey) {
      return send(401, JSON.stringify({ error: { type: 'invalid_request_error', code: 'api_key_invalid', message: `Invalid API Key provided: ${auth[1]!.slice(0, 8)}****` } }));
    }
    if (rateLimited > 0) {
      rateLimited -= 1;
      return send(429, JSON.stringify({ error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.' } }));
    }
    const params = parseForm(method === 'GET' ? url.search.slice(1) : raw);
    const routeKey = `${method} ${url.pathname}`;
    if (method === 'POST' && key !== undefined) {
      const earlier = idempotent.get(key);
      if (earlier) {
        if (earlier.route !== routeKey || earlier.params !== canonical(params)) {
          return send(400, JSON.stringify({
            error: {
              type: 'idempotency_error',
              message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
            },
          }));
        }
        return send(earlier.status, earlier.body, { 'idempotent-replayed': 'true', 'idempotency-key': key });
      }
    }
    let status = 200;
    let body: string;
    try {
      body = JSON.stringify(route(method, url.pathname, params));
    } catch (e) {
      if (!(e instanceof StripeFailure)) throw e;
      status = e.status;
      body = JSON.stringify({ error: e.error });
    }
    // Stripe stores the answer of a key unless the request failed validation (400) or for a server error.
    if (method === 'POST' && key !== undefined && status !== 400 && status < 500) idempotent.set(key, { route: routeKey, params: canonical(params), status, body });
    send(status, body, key === undefined ? {} : { 'idempotency-key': key });
  }

  // The buyer's side: what Stripe's hosted Checkout page does.

  const sent = (e: Stripe.Event, o: Send): Promise<Delivery> => (o.send === false ? Promise.resolve({ event: e, status: null, body: null }) : deliver(e));

  async function completeCheckout(sessionId: string, o: { card?: string; delayed?: boolean } & Send = {}): Promise<Delivery> {
    const s = session(sessionId);
    if (s.status !== 'open') throw new Error(`Checkout session ${sessionId} is ${String(s.status)}, not open`);
    const customer = s.customer as string | null;
    const pm = paymentMethod(o.card ?? CARDS.visa, customer);
    if (s.mode === 'setup') {
      const intent = objects.get(s.setup_intent as string)!;
      Object.assign(intent, { status: 'succeeded', payment_method: pm.id });
    } else {
      const metadata = obj(obj(s as Params, 'payment_intent_data'), 'metadata');
      const intent = paymentIntent({ amount: s.amount_total as number, currency: s.currency as string, customer, metadata, pm: pm.id, status: o.delayed ? 'processing' : 'succeeded' });
      Object.assign(s, { payment_intent: intent.id, payment_status: o.delayed ? 'unpaid' : 'paid' });
    }
    Object.assign(s, { status: 'complete', url: null });
    return sent(event('checkout.session.completed', s), o);
  }

  async function settleDelayed(sessionId: string, outcome: 'succeeded' | 'failed', o: Send = {}): Promise<Delivery> {
    const s = session(sessionId);
    if (s.status !== 'complete' || s.payment_status !== 'unpaid') throw new Error(`Checkout session ${sessionId} has no delayed payment pending`);
    const intent = objects.get(s.payment_intent as string)!;
    intent.status = outcome === 'succeeded' ? 'succeeded' : 'requires_payment_method';
    if (outcome === 'succeeded') s.payment_status = 'paid';
    return sent(event(`checkout.session.async_payment_${outcome}`, s), o);
  }

  async function expireCheckout(sessionId: string, o: Send = {}): Promise<Delivery> {
    const s = session(sessionId);
    if (s.status !== 'open') throw new Error(`Checkout session ${sessionId} is ${String(s.status)}, not open`);
    s.status = 'expired';
    s.url = null;
    return sent(event('checkout.session.expired', s), o);
  }

  /** The hosted page, for a person in the demo: a form per outcome. */
  async function page(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    const m = /^\/c\/pay\/(cs_[A-Za-z0-9_]+)(?:\/(pay|cancel))?$/.exec(new URL(req.url ?? '/', 'http://stripe.local').pathname)!;
    const s = objects.get(m[1]!);
    if (!s) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such Checkout session');
      return;
    }
    const redirect = (to: string): void => {
      res.writeHead(303, { location: to.replace('{CHECKOUT_SESSION_ID}', s.id) }).end();
    };
    if (req.method === 'POST' && m[2] === 'pay') {
      try {
        await completeCheckout(s.id, { card: new URLSearchParams(raw).get('card') ?? CARDS.visa });
        return redirect(s.success_url as string);
      } catch (e) {
        if (!(e instanceof CardDeclined)) throw e;
        res.writeHead(402, { 'content-type': 'text/plain' }).end(`Your card was declined (${e.declineCode}).`);
        return;
      }
    }
    if (req.method === 'POST' && m[2] === 'cancel') return redirect((s.cancel_url as string | null) ?? '/');
    const what = s.mode === 'setup' ? 'Save a card' : `Pay ${((s.amount_total as number) / 100).toFixed(2)} ${String(s.currency).toUpperCase()}`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(
      `<!doctype html><title>Checkout</title><h1>${what}</h1><p>Session ${s.id}: ${String(s.status)}</p>` +
        `<form method="post" action="/c/pay/${s.id}/pay"><input name="card" value="${CARDS.visa}"><button>${s.mode === 'setup' ? 'Save' : 'Pay'}</button></form>` +
        `<form method="post" action="/c/pay/${s.id}/cancel"><button>Cancel</button></form>`,
    );
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const handle = req.url?.startsWith('/c/pay/') ? page(req, res, raw) : Promise.resolve(api(req, res, raw));
      handle.catch((e: unknown) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { type: 'api_error', message: (e as Error).message } }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    secretKey,
    webhookSecret,
    env: { STRIPE_API_BASE: base, STRIPE_SECRET_KEY: secretKey, STRIPE_WEBHOOK_SECRET: webhookSecret },
    setWebhookUrl: (u) => {
      webhookUrl = u;
    },
    objects,
    events,
    requests,
    completeCheckout,
    payInvoice,
    rateLimitNext: (n) => {
      rateLimited = n;
    },
    settleDelayed,
    expireCheckout,
    deliver,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
