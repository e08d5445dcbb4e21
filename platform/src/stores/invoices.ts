import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { InvoiceState } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

export type InvoiceState = z.infer<typeof InvoiceState>;

/** One line of an invoice (invoicer/src/core/lines.ts computes them), in micro-units of its currency. */
export interface InvoiceLineRecord {
  lineNo: number;
  kind: 'usage' | 'late_usage' | 'addon';
  description: string;
  product: string | null;
  /** YYYY-MM of the events (late lines: an earlier month than the invoice's) */
  usageMonth: string;
  unit: string | null;
  quantity: bigint;
  unitPrice: bigint;
  per: bigint;
  events: bigint;
  /** at list price */
  amount: bigint;
  /** paid by free credits (the rater burnt them first) */
  covered: bigint;
  /** billed */
  due: bigint;
}

export interface InvoiceRecord {
  id: string;
  accountId: string;
  month: string;
  currency: 'USD' | 'EUR';
  state: InvoiceState;
  subtotal: bigint;
  covered: bigint;
  total: bigint;
  amountDue: bigint;
  ledgerTotal: bigint;
  difference: bigint;
  cutoffAt: Date;
  invoiceDate: Date;
  dueAt: Date;
  invoiceIssuer: string | null;
  invoiceNumber: bigint | null;
  stripeInvoiceId: string | null;
  paidAt: Date | null;
  failedAt: Date | null;
  buyerEmail: string | null;
}

const InvoiceRow = z.object({
  id: z.string(), account_id: z.string(), month: z.string(), currency: z.enum(['USD', 'EUR']), state: InvoiceState,
  subtotal: z.bigint(), covered: z.bigint(), total: z.bigint(), amount_due: z.bigint(), ledger_total: z.bigint(), difference: z.bigint(),
  cutoff_at: z.date(), invoice_date: z.date(), due_at: z.date(), invoice_issuer: z.string().nullable(), invoice_number: z.bigint().nullable(),
  stripe_invoice_id: z.string().nullable(), paid_at: z.date().nullable(), failed_at: z.date().nullable(), buyer_email: z.string().nullable(),
}).transform((r): InvoiceRecord => ({
  id: r.id, accountId: r.account_id, month: r.month, currency: r.currency, state: r.state, subtotal: r.subtotal, covered: r.covered,
  total: r.total, amountDue: r.amount_due, ledgerTotal: r.ledger_total, difference: r.difference, cutoffAt: r.cutoff_at,
  invoiceDate: r.invoice_date, dueAt: r.due_at, invoiceIssuer: r.invoice_issuer, invoiceNumber: r.invoice_number,
  stripeInvoiceId: r.stripe_invoice_id, paidAt: r.paid_at, failedAt: r.failed_at, buyerEmail: r.buyer_email,
}));

const LineRow = z.object({
  line_no: z.number(), kind: z.enum(['usage', 'late_usage', 'addon']), description: z.string(), product: z.string().nullable(),
  usage_month: z.string(), unit: z.string().nullable(), quantity: z.bigint(), unit_price: z.bigint(), per: z.bigint(), events: z.bigint(),
  amount: z.bigint(), covered: z.bigint(), due: z.bigint(),
}).transform((r): InvoiceLineRecord => ({
  lineNo: r.line_no, kind: r.kind, description: r.description, product: r.product, usageMonth: r.usage_month, unit: r.unit,
  quantity: r.quantity, unitPrice: r.unit_price, per: r.per, events: r.events, amount: r.amount, covered: r.covered, due: r.due,
}));

const SELECT = `SELECT i.id, i.account_id, i.month, i.currency, i.state, i.subtotal, i.covered, i.total, i.amount_due, i.ledger_total,
  i.difference, i.cutoff_at, i.invoice_date, i.due_at, i.invoice_issuer, i.invoice_number, i.stripe_invoice_id, i.paid_at, i.failed_at,
  a.email AS buyer_email FROM invoices i JOIN accounts a ON a.id = i.account_id`;

export const newInvoiceId = () => `inv_${randomBytes(12).toString('hex')}`;

export type NewInvoice = Omit<InvoiceRecord, 'buyerEmail' | 'invoiceIssuer' | 'invoiceNumber' | 'stripeInvoiceId' | 'paidAt' | 'failedAt'>;

/**
 * Writes an invoice and its lines unless the account has one for the month (UNIQUE (account_id,
 * month)): false when another run got there first, and nothing is written.
 */
export async function insertInvoice(db: Db, inv: NewInvoice, lines: readonly InvoiceLineRecord[]): Promise<boolean> {
  const s = (v: bigint) => v.toString();
  const r = await db.query(
    `WITH inv AS (
       INSERT INTO invoices (id, account_id, month, currency, state, subtotal, covered, total, amount_due, ledger_total, difference,
                             cutoff_at, invoice_date, due_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $13)
       ON CONFLICT (account_id, month) DO NOTHING RETURNING id
     ), lines AS (
       INSERT INTO invoice_lines (invoice_id, line_no, kind, description, product, usage_month, unit, quantity, unit_price, per, events, amount, covered, due)
       SELECT inv.id, v.line_no, v.kind, v.description, v.product, v.usage_month, v.unit, v.quantity, v.unit_price, v.per, v.events, v.amount, v.covered, v.due
         FROM inv, json_to_recordset($15::json) AS v(line_no int, kind text, description text, product text, usage_month text, unit text,
              quantity bigint, unit_price bigint, per bigint, events bigint, amount bigint, covered bigint, due bigint)
     )
     SELECT id FROM inv`,
    [inv.id, inv.accountId, inv.month, inv.currency, inv.state, s(inv.subtotal), s(inv.covered), s(inv.total), s(inv.amountDue),
      s(inv.ledgerTotal), s(inv.difference), inv.cutoffAt, inv.invoiceDate, inv.dueAt,
      JSON.stringify(lines.map((l) => ({
        line_no: l.lineNo, kind: l.kind, description: l.description, product: l.product, usage_month: l.usageMonth, unit: l.unit,
        quantity: s(l.quantity), unit_price: s(l.unitPrice), per: s(l.per), events: s(l.events), amount: s(l.amount), covered: s(l.covered), due: s(l.due),
      })))],
  );
  return r.rowCount === 1;
}

export async function getInvoice(db: Db, id: string): Promise<InvoiceRecord | undefined> {
  return (await queryRows(db, 'invoices', InvoiceRow, `${SELECT} WHERE i.id = $1`, [id]))[0];
}

export async function invoiceOfMonth(db: Db, accountId: string, month: string, opts: { forUpdate?: boolean } = {}): Promise<InvoiceRecord | undefined> {
  return (await queryRows(db, 'invoices', InvoiceRow, `${SELECT} WHERE i.account_id = $1 AND i.month = $2${opts.forUpdate ? ' FOR UPDATE OF i' : ''}`, [accountId, month]))[0];
}

export async function invoiceOfStripe(db: Db, stripeInvoiceId: string): Promise<InvoiceRecord | undefined> {
  return (await queryRows(db, 'invoices', InvoiceRow, `${SELECT} WHERE i.stripe_invoice_id = $1 FOR UPDATE OF i`, [stripeInvoiceId]))[0];
}

/** An account's invoices, newest month first. */
export async function listInvoices(db: Db, accountId: string, limit = 120): Promise<InvoiceRecord[]> {
  return queryRows(db, 'invoices', InvoiceRow, `${SELECT} WHERE i.account_id = $1 ORDER BY i.month DESC LIMIT $2`, [accountId, limit]);
}

export async function invoiceLines(db: Db, invoiceId: string): Promise<InvoiceLineRecord[]> {
  return queryRows(db, 'invoice_lines', LineRow,
    `SELECT line_no, kind, description, product, usage_month, unit, quantity, unit_price, per, events, amount, covered, due
       FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no`, [invoiceId]);
}

/** The cut-off of each account's latest invoice before `month`: where its late-usage window starts. */
export async function previousCutoffs(db: Db, accountIds: readonly string[], month: string): Promise<Map<string, number>> {
  const r = await db.query<{ account_id: string; cutoff: Date }>(
    `SELECT DISTINCT ON (account_id) account_id, cutoff_at AS cutoff FROM invoices
      WHERE account_id = ANY($1) AND month < $2 ORDER BY account_id, month DESC`, [accountIds, month]);
  return new Map(r.rows.map((x) => [x.account_id, x.cutoff.getTime()]));
}

/**
 * The ledger's postpaid accrual (usage_ledger, Postgres) for exactly the events an invoice run
 * reads from ClickHouse: of [from, to) rated by the cut-off, and before `from` rated after the
 * account's previous cut-off (`since`; none: no late window). What the run reconciles against.
 */
export async function ledgerPostpaid(
  db: Db, w: { accounts: readonly string[]; since: readonly number[]; cutoff: number; from: number; to: number },
): Promise<Map<string, bigint>> {
  const r = await db.query<{ account_id: string; postpaid: bigint }>(
    `SELECT u.account_id, sum(u.postpaid)::bigint AS postpaid
       FROM unnest($1::text[], $2::bigint[]) AS w(account_id, since)
       JOIN usage_ledger u ON u.account_id = w.account_id
      WHERE u.rated_at <= to_timestamp($3::double precision / 1000)
        AND ((u.event_time >= to_timestamp($4::double precision / 1000) AND u.event_time < to_timestamp($5::double precision / 1000))
          OR (w.since > 0 AND u.event_time < to_timestamp($4::double precision / 1000) AND u.rated_at > to_timestamp(w.since::double precision / 1000)))
      GROUP BY u.account_id`,
    [w.accounts, w.since, w.cutoff, w.from, w.to]);
  return new Map(r.rows.map((x) => [x.account_id, x.postpaid]));
}

/**
 * Postpaid accounts by id, `limit` after `after` (the run pages through them), or the given ones;
 * with anchorDayAtMost, only those whose billing anchor day has come this month.
 */
export async function postpaidAccounts(
  db: Db, opts: { after: string; limit: number; only?: readonly string[]; anchorDayAtMost?: number },
): Promise<{ id: string; currency: 'USD' | 'EUR' }[]> {
  const r = await db.query<{ id: string; currency: 'USD' | 'EUR' }>(
    `SELECT id, currency FROM accounts WHERE billing_mode = 'postpaid' AND id > $1 AND ($3::text[] IS NULL OR id = ANY($3))
        AND billing_anchor_day <= $4
      ORDER BY id LIMIT $2`, [opts.after, opts.limit, opts.only ?? null, opts.anchorDayAtMost ?? 31]);
  return r.rows;
}

/**
 * Each account's add-on charges of `month` (ledger entries kind addon created in it) and the part
 * of them the month's postpaid accrual holds: postpaid_usage of the month minus the usage accrued
 * for the month's events (the add-on job adds its postpaid part to postpaid_usage of the month it
 * charges in; usage adds to the month of the event).
 */
export async function addonCharges(
  db: Db, accountIds: readonly string[], w: { month: string; from: number; to: number },
): Promise<Map<string, { charges: { reason: string; amount: bigint }[]; postpaid: bigint }>> {
  const entries = await db.query<{ account_id: string; reason: string | null; amount: bigint }>(
    `SELECT account_id, reason, -amount AS amount FROM ledger_entries
      WHERE account_id = ANY($1) AND kind = 'addon' AND created_at >= to_timestamp($2::double precision / 1000)
        AND created_at < to_timestamp($3::double precision / 1000) ORDER BY account_id, seq`, [accountIds, w.from, w.to]);
  const out = new Map<string, { charges: { reason: string; amount: bigint }[]; postpaid: bigint }>();
  for (const e of entries.rows) {
    const a = out.get(e.account_id) ?? { charges: [], postpaid: 0n };
    a.charges.push({ reason: e.reason ?? 'add-on', amount: e.amount });
    out.set(e.account_id, a);
  }
  if (out.size === 0) return out;
  const accrued = await db.query<{ account_id: string; postpaid: bigint }>(
    `SELECT p.account_id, (p.amount - coalesce((SELECT sum(u.postpaid) FROM usage_ledger u WHERE u.account_id = p.account_id
              AND u.event_time >= to_timestamp($3::double precision / 1000) AND u.event_time < to_timestamp($4::double precision / 1000)), 0))::bigint AS postpaid
       FROM postpaid_usage p WHERE p.account_id = ANY($1) AND p.month = ($2 || '-01')::date`, [[...out.keys()], w.month, w.from, w.to]);
  for (const r of accrued.rows) out.get(r.account_id)!.postpaid = r.postpaid > 0n ? r.postpaid : 0n;
  return out;
}

/** The next invoice number of `issuer`, in the caller's transaction (invoice_sequences: no gaps). */
export async function nextInvoiceNumber(db: Db, issuer: string): Promise<bigint> {
  const r = await db.query<{ last_number: bigint }>(
    `INSERT INTO invoice_sequences (issuer, last_number) VALUES ($1, 1)
     ON CONFLICT (issuer) DO UPDATE SET last_number = invoice_sequences.last_number + 1 RETURNING last_number`, [issuer]);
  return r.rows[0]!.last_number;
}

/** The ledger's postpaid accrual (usage_ledger) of the events of [from, to) rated by the cut-off, per account. */
export async function ledgerMonthToDate(db: Db, accountIds: readonly string[], w: { cutoff: number; from: number; to: number }): Promise<Map<string, bigint>> {
  return ledgerPostpaid(db, { accounts: accountIds, since: accountIds.map(() => 0), ...w });
}

export interface DailyStatement {
  accountId: string;
  /** YYYY-MM-DD */
  day: string;
  month: string;
  currency: 'USD' | 'EUR';
  amount: bigint;
  covered: bigint;
  due: bigint;
  ledgerDue: bigint;
  computedAt: Date;
}

/** Writes the day's statements, replacing a same-day earlier run's. */
export async function saveStatements(db: Db, rows: readonly DailyStatement[]): Promise<void> {
  if (rows.length === 0) return;
  const s = (v: bigint) => v.toString();
  await db.query(
    `INSERT INTO daily_statements (account_id, day, month, currency, amount, covered, due, ledger_due, computed_at)
     SELECT account_id, day, month, currency, amount, covered, due, ledger_due, computed_at
       FROM json_to_recordset($1::json) AS v(account_id text, day date, month text, currency text, amount bigint, covered bigint, due bigint,
            ledger_due bigint, computed_at timestamptz)
     ON CONFLICT (account_id, day) DO UPDATE SET amount = excluded.amount, covered = excluded.covered, due = excluded.due,
       ledger_due = excluded.ledger_due, computed_at = excluded.computed_at`,
    [JSON.stringify(rows.map((r) => ({
      account_id: r.accountId, day: r.day, month: r.month, currency: r.currency, amount: s(r.amount), covered: s(r.covered), due: s(r.due),
      ledger_due: s(r.ledgerDue), computed_at: r.computedAt.toISOString(),
    })))]);
}

/** The latest statement of the account: its "monthly cost, updated daily". */
export async function latestStatement(db: Db, accountId: string): Promise<DailyStatement | undefined> {
  const r = await db.query<{ account_id: string; day: string; month: string; currency: 'USD' | 'EUR'; amount: bigint; covered: bigint; due: bigint; ledger_due: bigint; computed_at: Date }>(
    `SELECT account_id, to_char(day, 'YYYY-MM-DD') AS day, month, currency, amount, covered, due, ledger_due, computed_at
       FROM daily_statements WHERE account_id = $1 ORDER BY day DESC LIMIT 1`, [accountId]);
  const x = r.rows[0];
  return x && {
    accountId: x.account_id, day: x.day, month: x.month, currency: x.currency, amount: x.amount, covered: x.covered, due: x.due,
    ledgerDue: x.ledger_due, computedAt: x.computed_at,
  };
}
