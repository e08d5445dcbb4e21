import type { InvoiceLineRecord } from '@meterstream/platform/stores/invoices';

/** One line of an invoice, in micro-units of its currency: amount (at list price) = covered (by free credits) + due. */
export type InvoiceLine = InvoiceLineRecord;

/** Usage of one product at one unit price in one month of events, as ClickHouse sums it. */
export interface UsageGroup {
  /** YYYY-MM */
  month: string;
  product: string;
  unit: string;
  unitPrice: bigint;
  per: bigint;
  events: bigint;
  quantity: bigint;
  amount: bigint;
  fromGrants: bigint;
  postpaid: bigint;
}

/** An add-on's monthly price as the ledger took it, and the part of it the postpaid accrual holds. */
export interface AddonCharge {
  description: string;
  amount: bigint;
  due: bigint;
}

const MICROS_PER_CENT = 10_000n;

/**
 * The lines of `month`'s invoice: the month's usage per product and unit price, then each earlier
 * month's late usage ("late usage for <month>"), then the add-ons. A postpaid event's amount is
 * what free credits covered plus what accrued (overdraft is prepaid only), so amount = covered + due.
 */
export function invoiceLines(month: string, usage: readonly UsageGroup[], addons: readonly AddonCharge[]): InvoiceLine[] {
  const order = (a: UsageGroup, b: UsageGroup) =>
    a.month.localeCompare(b.month) || a.product.localeCompare(b.product) || (a.unitPrice < b.unitPrice ? -1 : a.unitPrice > b.unitPrice ? 1 : 0)
    || (a.per < b.per ? -1 : a.per > b.per ? 1 : 0);
  const current = usage.filter((u) => u.month === month).sort(order);
  const late = usage.filter((u) => u.month < month).sort(order);
  const lines: InvoiceLine[] = [];
  for (const u of [...current, ...late]) {
    const isLate = u.month !== month;
    lines.push({
      lineNo: lines.length + 1, kind: isLate ? 'late_usage' : 'usage',
      description: isLate ? `${u.product}: late usage for ${u.month}` : u.product,
      product: u.product, usageMonth: u.month, unit: u.unit, quantity: u.quantity, unitPrice: u.unitPrice, per: u.per, events: u.events,
      amount: u.amount, covered: u.amount - u.postpaid, due: u.postpaid,
    });
  }
  for (const a of addons) {
    lines.push({
      lineNo: lines.length + 1, kind: 'addon', description: a.description, product: null, usageMonth: month, unit: null,
      quantity: 1_000_000n, unitPrice: a.amount, per: 1n, events: 0n, amount: a.amount, covered: a.amount - a.due, due: a.due,
    });
  }
  return lines;
}

/**
 * The lines' charges in whole cents, as Stripe takes them: together the exact total rounded DOWN
 * to a cent (never more than was accrued, so an invoice never passes the monthly limit the gate
 * held it to), each line its due rounded down, and the cents left over to the lines with the
 * largest remainders (ties: the earlier line). Less than a cent per invoice is written off.
 */
export function lineCents(dues: readonly bigint[]): bigint[] {
  const total = dues.reduce((s, d) => s + d, 0n) / MICROS_PER_CENT;
  const cents = dues.map((d) => d / MICROS_PER_CENT);
  let left = total - cents.reduce((s, c) => s + c, 0n);
  const byRemainder = dues.map((d, i) => ({ i, rest: d % MICROS_PER_CENT })).sort((a, b) => (a.rest === b.rest ? a.i - b.i : a.rest > b.rest ? -1 : 1));
  for (const { i } of byRemainder) {
    if (left <= 0n) break;
    cents[i]! += 1n;
    left -= 1n;
  }
  return cents;
}

export interface Totals {
  subtotal: bigint;
  covered: bigint;
  total: bigint;
  /** micro-units, whole cents: total rounded down to a cent (lineCents) */
  amountDue: bigint;
}

export function totals(lines: readonly InvoiceLine[]): Totals {
  let subtotal = 0n;
  let covered = 0n;
  let total = 0n;
  for (const l of lines) {
    subtotal += l.amount;
    covered += l.covered;
    total += l.due;
  }
  return { subtotal, covered, total, amountDue: (total / MICROS_PER_CENT) * MICROS_PER_CENT };
}

/** 202611 -> 2026-11 */
export const ymToMonth = (ym: string): string => `${ym.slice(0, 4)}-${ym.slice(4, 6)}`;
