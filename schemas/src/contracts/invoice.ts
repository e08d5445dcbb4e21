import { z } from 'zod';
import { AccountParams } from './account.js';
import { Currency, SignedMoneyString } from './common.js';

const Month = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'a month YYYY-MM');

export const InvoiceState = z.enum(['draft', 'needs_review', 'open', 'paid', 'payment_failed', 'no_charge']);

export const InvoiceParams = AccountParams.extend({ invoiceId: z.string().regex(/^inv_[0-9a-f]{24}$/, 'an invoice id is inv_ and 24 hex digits') });
export const DayParams = AccountParams.extend({
  day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a day YYYY-MM-DD')
    .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d), 'a day of the calendar'),
});
export const HistoryQuery = z.object({ year: z.coerce.number().int().min(2000).max(9999).optional().describe('default: the current year (UTC)') });

export const InvoiceLine = z.object({
  line: z.number().int(),
  kind: z.enum(['usage', 'late_usage', 'addon']).describe('late_usage: events of an earlier month rated after its invoice'),
  description: z.string(),
  product: z.string().nullable(),
  usage_month: Month,
  unit: z.string().nullable(),
  quantity: SignedMoneyString.describe('in the unit, 6 decimals'),
  unit_price: SignedMoneyString.describe('per `per` units'),
  per: z.number().int(),
  amount: SignedMoneyString.describe('at list price'),
  covered_by_credits: SignedMoneyString.describe('what free credits paid'),
  due: SignedMoneyString,
});

export const Invoice = z.object({
  id: z.string(),
  account_id: z.string(),
  month: Month,
  number: z.string().nullable().describe('given when issued, e.g. MS-000042'),
  state: InvoiceState.describe('needs_review: ClickHouse and the ledger disagree by `difference`; held, not billed'),
  currency: Currency,
  subtotal: SignedMoneyString,
  covered_by_credits: SignedMoneyString,
  total: SignedMoneyString,
  amount_due: SignedMoneyString.describe('charged: the lines rounded to cents'),
  difference: SignedMoneyString,
  invoice_date: z.string(),
  due_at: z.string().describe('unpaid by then, API access is suspended'),
  paid_at: z.string().nullable(),
  pdf_url: z.string(),
});
export type Invoice = z.infer<typeof Invoice>;

export const InvoiceList = z.object({ invoices: z.array(Invoice).describe('newest month first') });
export const InvoiceDetail = Invoice.extend({ lines: z.array(InvoiceLine) });

export const MonthlyHistory = z.object({
  year: z.number().int(),
  currency: Currency,
  months: z.array(z.object({
    month: Month,
    amount: SignedMoneyString.describe('usage at list price (ClickHouse), add-ons excluded'),
    invoice_total: SignedMoneyString.nullable().describe("the month's invoice total, once invoiced"),
    state: InvoiceState.nullable(),
  })).describe('January to the current month; the current month\'s amount is real time'),
  statement: z.object({
    day: z.string(),
    month: Month,
    amount: SignedMoneyString.describe('month-to-date usage at list price'),
    covered_by_credits: SignedMoneyString,
    due: SignedMoneyString.describe('month-to-date cost: what the month\'s invoice will charge for usage so far'),
    computed_at: z.string(),
  }).nullable().describe('seed 001: "your monthly cost is updated daily at 08:00 UTC": the latest daily statement'),
});

export const DailyDetail = z.object({
  day: z.string(),
  currency: Currency,
  items: z.array(z.object({
    product: z.string(), unit: z.string(), events: z.number().int(), quantity: SignedMoneyString, unit_price: SignedMoneyString, per: z.number().int(),
    cost: SignedMoneyString,
  })),
  total: SignedMoneyString,
});
