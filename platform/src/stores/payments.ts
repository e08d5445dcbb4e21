import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { Currency } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

/** What Stripe needs to know about an account (migration 018). */
export interface BillingProfile {
  accountId: string;
  email: string | null;
  currency: Currency;
  stripeCustomerId: string | null;
  /** The default payment method saved through Checkout in setup mode (pm_...). */
  paymentMethod: string | null;
}

const ProfileRow = z.object({
  id: z.string(), email: z.string().nullable(), currency: Currency, stripe_customer_id: z.string().nullable(), payment_method: z.string().nullable(),
}).transform((r): BillingProfile => ({
  accountId: r.id, email: r.email, currency: r.currency, stripeCustomerId: r.stripe_customer_id, paymentMethod: r.payment_method,
}));

export async function billingProfile(db: Db, accountId: string): Promise<BillingProfile | undefined> {
  const [row] = await queryRows(db, 'accounts', ProfileRow,
    'SELECT id, email, currency, stripe_customer_id, payment_method FROM accounts WHERE id = $1', [accountId]);
  return row;
}

/** Stores the account's Stripe customer unless it has one; answers the one it keeps. */
export async function saveStripeCustomer(db: Db, accountId: string, customerId: string): Promise<string> {
  const r = await db.query<{ stripe_customer_id: string }>(
    'UPDATE accounts SET stripe_customer_id = coalesce(stripe_customer_id, $2) WHERE id = $1 RETURNING stripe_customer_id', [accountId, customerId]);
  return r.rows[0]!.stripe_customer_id;
}

/** Makes the payment method the account's default (the last one saved wins). */
export async function savePaymentMethod(db: Db, accountId: string, paymentMethod: string): Promise<void> {
  await db.query('UPDATE accounts SET payment_method = $2 WHERE id = $1', [accountId, paymentMethod]);
}

/** The account whose Stripe customer this is. */
export async function accountOfCustomer(db: Db, customerId: string): Promise<string | undefined> {
  const r = await db.query<{ id: string }>('SELECT id FROM accounts WHERE stripe_customer_id = $1', [customerId]);
  return r.rows[0]?.id;
}

/** A payment received, with its invoice and the buyer as the invoice shows them. */
export interface PaymentRecord {
  id: string;
  accountId: string;
  topUpId: string;
  amount: bigint;
  currency: Currency;
  status: 'succeeded';
  method: string;
  creditsGranted: bigint;
  invoiceIssuer: string;
  invoiceNumber: bigint;
  vatRatePercent: string;
  vatAmount: bigint;
  paidAt: Date;
  buyerEmail: string | null;
  /** Its refund (POST …/refund: the unspent part), if one was made. */
  refund: { id: string; amount: bigint; state: 'pending' | 'succeeded'; createdAt: Date } | null;
}

const PaymentRow = z.object({
  id: z.string(), account_id: z.string(), top_up_id: z.string(), amount: z.bigint(), currency: Currency, status: z.literal('succeeded'),
  method: z.string(), credits_granted: z.bigint(), invoice_issuer: z.string(), invoice_number: z.bigint(), vat_rate_percent: z.string(),
  vat_amount: z.bigint(), paid_at: z.date(), buyer_email: z.string().nullable(),
  refund_id: z.string().nullable(), refund_amount: z.bigint().nullable(), refund_state: z.enum(['pending', 'succeeded']).nullable(), refund_at: z.date().nullable(),
}).transform((r): PaymentRecord => ({
  id: r.id, accountId: r.account_id, topUpId: r.top_up_id, amount: r.amount, currency: r.currency, status: r.status, method: r.method,
  creditsGranted: r.credits_granted, invoiceIssuer: r.invoice_issuer, invoiceNumber: r.invoice_number, vatRatePercent: r.vat_rate_percent,
  vatAmount: r.vat_amount, paidAt: r.paid_at, buyerEmail: r.buyer_email,
  refund: r.refund_id === null ? null : { id: r.refund_id, amount: r.refund_amount!, state: r.refund_state!, createdAt: r.refund_at! },
}));

const SELECT = `SELECT p.id, p.account_id, p.top_up_id, p.amount, p.currency, p.status, p.method, p.credits_granted, p.invoice_issuer,
  p.invoice_number, p.vat_rate_percent::text AS vat_rate_percent, p.vat_amount, p.paid_at, a.email AS buyer_email,
  r.id AS refund_id, r.amount AS refund_amount, r.state AS refund_state, r.created_at AS refund_at
  FROM payments p JOIN accounts a ON a.id = p.account_id LEFT JOIN refunds r ON r.payment_id = p.id`;

export interface NewPayment {
  accountId: string;
  topUpId: string;
  amount: bigint;
  currency: Currency;
  method: string;
  paymentIntentId: string | null;
  creditsGranted: bigint;
  grantId: string;
  /** Whose invoice numbers: each issuer's run 1, 2, 3... without gaps. */
  invoiceIssuer: string;
  paidAtMs: number;
}

/**
 * Records a payment inside the caller's transaction with the issuer's next invoice number: the
 * sequence row stays locked until the commit, and a rollback gives the number back.
 */
export async function recordPayment(db: Db, p: NewPayment): Promise<PaymentRecord> {
  const seq = await db.query<{ last_number: bigint }>(
    `INSERT INTO invoice_sequences (issuer, last_number) VALUES ($1, 1)
     ON CONFLICT (issuer) DO UPDATE SET last_number = invoice_sequences.last_number + 1 RETURNING last_number`, [p.invoiceIssuer]);
  const id = `pay_${randomBytes(12).toString('hex')}`;
  await db.query(
    `INSERT INTO payments (id, account_id, top_up_id, amount, currency, status, method, payment_intent_id, credits_granted, grant_id,
                           invoice_issuer, invoice_number, paid_at)
     VALUES ($1, $2, $3, $4, $5, 'succeeded', $6, $7, $8, $9, $10, $11, to_timestamp($12::double precision / 1000))`,
    [id, p.accountId, p.topUpId, p.amount, p.currency, p.method, p.paymentIntentId, p.creditsGranted, p.grantId, p.invoiceIssuer,
      seq.rows[0]!.last_number, p.paidAtMs]);
  return (await getPayment(db, p.accountId, id))!;
}

/** The account's payments, newest first. */
export async function listPayments(db: Db, accountId: string, limit: number): Promise<PaymentRecord[]> {
  return queryRows(db, 'payments', PaymentRow, `${SELECT} WHERE p.account_id = $1 ORDER BY p.paid_at DESC, p.id LIMIT $2`, [accountId, limit]);
}

export async function getPayment(db: Db, accountId: string, id: string): Promise<PaymentRecord | undefined> {
  const [row] = await queryRows(db, 'payments', PaymentRow, `${SELECT} WHERE p.account_id = $1 AND p.id = $2`, [accountId, id]);
  return row;
}
