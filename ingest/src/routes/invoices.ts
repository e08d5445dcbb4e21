import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  AccountParams, DailyDetail, DayParams, formatMicros, HistoryQuery, Invoice, InvoiceDetail, InvoiceList, InvoiceParams, MonthlyHistory,
} from '@meterstream/schemas';
import { getAccount } from '@meterstream/platform/stores/accounts';
import { getInvoice, invoiceLines, latestStatement, listInvoices, type InvoiceLineRecord, type InvoiceRecord } from '@meterstream/platform/stores/invoices';
import { invoiceNumberText } from '@meterstream/invoicer/dunning';
import { renderMonthlyInvoicePdf, type InvoiceSeller } from '@meterstream/invoicer/pdf';
import { dayDetail, monthlyTotals } from '@meterstream/invoicer/queries';
import { NO_SINK_CLICKHOUSE } from '../config.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toInvoice = (i: InvoiceRecord): Invoice => ({
  id: i.id, account_id: i.accountId, month: i.month, number: invoiceNumberText(i), state: i.state, currency: i.currency,
  subtotal: formatMicros(i.subtotal), covered_by_credits: formatMicros(i.covered), total: formatMicros(i.total),
  amount_due: formatMicros(i.amountDue), difference: formatMicros(i.difference), invoice_date: i.invoiceDate.toISOString(),
  due_at: i.dueAt.toISOString(), paid_at: i.paidAt?.toISOString() ?? null, pdf_url: `/v1/accounts/${i.accountId}/invoices/${i.id}/invoice.pdf`,
});

const toLine = (l: InvoiceLineRecord) => ({
  line: l.lineNo, kind: l.kind, description: l.description, product: l.product, usage_month: l.usageMonth, unit: l.unit,
  quantity: formatMicros(l.quantity), unit_price: formatMicros(l.unitPrice), per: Number(l.per), amount: formatMicros(l.amount),
  covered_by_credits: formatMicros(l.covered), due: formatMicros(l.due),
});

/** The monthly invoices of a postpaid account and its usage history (seeds 001, 004): billing roles only. */
export const invoiceRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const seller: InvoiceSeller = {
    name: ctx.config.INVOICE_SELLER_NAME,
    address: ctx.config.INVOICE_SELLER_ADDRESS === '' ? [] : ctx.config.INVOICE_SELLER_ADDRESS.split('\\n'),
    vatId: ctx.config.INVOICE_SELLER_VAT_ID,
  };
  const accountOr404 = async (id: string) => {
    const account = await getAccount(ctx.pool, id);
    if (!account) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${id} does not exist`);
    return account;
  };
  const invoiceOr404 = async (accountId: string, invoiceId: string) => {
    const inv = await getInvoice(ctx.pool, invoiceId);
    if (!inv || inv.accountId !== accountId) throw new ApiError(404, 'INVOICE_NOT_FOUND', `account ${accountId} has no invoice ${invoiceId}`);
    return inv;
  };
  const clickhouse = () => {
    if (!ctx.ch) throw new ApiError(503, 'CLICKHOUSE_NOT_CONFIGURED', `usage history is not available from this process: ${NO_SINK_CLICKHOUSE}`);
    return ctx.ch;
  };

  app.get('/v1/accounts/:id/invoices', {
    onRequest: ctx.keys.allow('billing:read'),
    schema: {
      summary: "The account's monthly invoices", tags: ['invoices'], params: AccountParams,
      description: 'One per month closed (postpaid accounts), newest first, with its state and the path of its PDF.',
      response: { 200: InvoiceList, ...errorResponses(400, 401, 403, 404) },
    },
  }, async (req) => {
    const invoices = await listInvoices(ctx.pool, req.params.id);
    if (invoices.length === 0) await accountOr404(req.params.id);
    return { invoices: invoices.map(toInvoice) };
  });

  app.get('/v1/accounts/:id/invoices/:invoiceId', {
    onRequest: ctx.keys.allow('billing:read'),
    schema: {
      summary: 'One invoice with its lines', tags: ['invoices'], params: InvoiceParams,
      description: 'Lines per product and unit price (quantity in its unit), late usage of earlier months, add-ons; what free credits covered.',
      response: { 200: InvoiceDetail, ...errorResponses(400, 401, 403, 404) },
    },
  }, async (req) => {
    const inv = await invoiceOr404(req.params.id, req.params.invoiceId);
    return { ...toInvoice(inv), lines: (await invoiceLines(ctx.pool, inv.id)).map(toLine) };
  });

  app.get('/v1/accounts/:id/invoices/:invoiceId/invoice.pdf', {
    onRequest: ctx.keys.allow('billing:read'),
    schema: {
      summary: 'The PDF of a monthly invoice', tags: ['invoices'], params: InvoiceParams, produces: ['application/pdf'],
      description: 'Number, period, lines, totals, VAT fields, seller and buyer.',
      response: errorResponses(400, 401, 403, 404),
    },
  }, async (req, reply) => {
    const inv = await invoiceOr404(req.params.id, req.params.invoiceId);
    const pdf = await renderMonthlyInvoicePdf(inv, await invoiceLines(ctx.pool, inv.id), seller);
    return reply.type('application/pdf')
      .header('content-disposition', `attachment; filename="invoice-${invoiceNumberText(inv) ?? inv.id}.pdf"`).send(pdf);
  });

  app.get('/v1/accounts/:id/usage/monthly', {
    onRequest: ctx.keys.allow('billing:read'),
    schema: {
      summary: 'Monthly history: month by month totals of a year', tags: ['invoices'], params: AccountParams, querystring: HistoryQuery,
      description: 'Usage at list price per month from January to the current month (or the whole past year), with each month\'s invoice total once invoiced, '
        + 'and the latest daily statement (month-to-date cost, updated daily at 08:00 UTC).',
      response: { 200: MonthlyHistory, ...errorResponses(400, 401, 403, 404, 503) },
    },
  }, async (req) => {
    const ch = clickhouse();
    const account = await accountOr404(req.params.id);
    const now = new Date(ctx.ledger.now());
    const year = req.query.year ?? now.getUTCFullYear();
    const last = year === now.getUTCFullYear() ? now.getUTCMonth() + 1 : year < now.getUTCFullYear() ? 12 : 0;
    const months = Array.from({ length: last }, (_, i) => `${year}-${String(i + 1).padStart(2, '0')}`);
    const [usage, invoices, statement] = await Promise.all([
      monthlyTotals(ch, ctx.chDatabase, { account: account.id, from: `${year}-01-01`, to: `${year + 1}-01-01` }),
      listInvoices(ctx.pool, account.id),
      latestStatement(ctx.pool, account.id),
    ]);
    const byMonth = new Map(usage.map((u) => [`${u.ym.slice(0, 4)}-${u.ym.slice(4)}`, u.amount]));
    const invoiceOf = new Map(invoices.map((i) => [i.month, i]));
    return {
      year, currency: account.currency,
      months: months.map((m) => ({
        month: m, amount: formatMicros(byMonth.get(m) ?? 0n),
        invoice_total: invoiceOf.has(m) ? formatMicros(invoiceOf.get(m)!.total) : null, state: invoiceOf.get(m)?.state ?? null,
      })),
      statement: statement ? {
        day: statement.day, month: statement.month, amount: formatMicros(statement.amount), covered_by_credits: formatMicros(statement.covered),
        due: formatMicros(statement.due), computed_at: statement.computedAt.toISOString(),
      } : null,
    };
  });

  app.get('/v1/accounts/:id/usage/daily/:day', {
    onRequest: ctx.keys.allow('billing:read'),
    schema: {
      summary: 'Daily itemized detail of one UTC day', tags: ['invoices'], params: DayParams,
      description: 'Per product (category) and unit price: events, quantity in its unit, unit price and cost.',
      response: { 200: DailyDetail, ...errorResponses(400, 401, 403, 404, 503) },
    },
  }, async (req) => {
    const ch = clickhouse();
    const account = await accountOr404(req.params.id);
    const rows = await dayDetail(ch, ctx.chDatabase, { account: account.id, day: req.params.day });
    return {
      day: req.params.day, currency: account.currency,
      items: rows.map((r) => ({
        product: r.product, unit: r.unit, events: Number(r.events), quantity: formatMicros(r.quantity), unit_price: formatMicros(r.unit_price),
        per: Number(r.per), cost: formatMicros(r.amount),
      })),
      total: formatMicros(rows.reduce((s, r) => s + r.amount, 0n)),
    };
  });
};
