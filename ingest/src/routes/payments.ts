import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountParams, formatMicros, Payment, PaymentList, PaymentParams } from '@meterstream/schemas';
import { getAccount } from '@meterstream/platform/stores/accounts';
import { getPayment, listPayments, type PaymentRecord } from '@meterstream/platform/stores/payments';
import { ApiError, errorResponses } from '../errors.js';
import { invoiceNumber, renderInvoicePdf, type Seller } from '../receipts/invoice-pdf.js';
import type { RouteContext } from './context.js';

const toPayment = (p: PaymentRecord): Payment => ({
  id: p.id, account_id: p.accountId, top_up_id: p.topUpId, amount: formatMicros(p.amount), currency: p.currency, date: p.paidAt.toISOString(),
  method: p.method, status: p.status, credits_granted: formatMicros(p.creditsGranted), invoice_number: invoiceNumber(p),
  invoice_url: `/v1/accounts/${p.accountId}/payments/${p.id}/invoice.pdf`,
  refund: p.refund && { id: p.refund.id, amount: formatMicros(p.refund.amount), state: p.refund.state, date: p.refund.createdAt.toISOString() },
});

/** The Payments page (seed 004): every completed payment, each with its PDF invoice. */
export const paymentRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const seller: Seller = {
    name: ctx.config.INVOICE_SELLER_NAME,
    address: ctx.config.INVOICE_SELLER_ADDRESS === '' ? [] : ctx.config.INVOICE_SELLER_ADDRESS.split('\\n'),
    vatId: ctx.config.INVOICE_SELLER_VAT_ID,
  };

  app.get(
    '/v1/accounts/:id/payments',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "The account's completed payments: amount, date, method, status, credits granted, invoice, refund",
        description: 'Every payment that succeeded, newest first, with the credits it granted, the path of its PDF invoice and its refund, if any.',
        tags: ['payments'],
        params: AccountParams,
        response: { 200: PaymentList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const payments = await listPayments(ctx.pool, req.params.id, 1000);
      if (payments.length === 0 && !(await getAccount(ctx.pool, req.params.id))) {
        throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      }
      return { payments: payments.map(toPayment) };
    },
  );

  app.get(
    '/v1/accounts/:id/payments/:paymentId/invoice.pdf',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: 'The PDF invoice of a payment',
        description: `Numbered per issuer without gaps (INVOICE_ISSUER-000001, ...), with the seller, the buyer and the VAT fields.`,
        tags: ['payments'],
        params: PaymentParams,
        produces: ['application/pdf'],
        response: errorResponses(400, 401, 403, 404),
      },
    },
    async (req, reply) => {
      const payment = await getPayment(ctx.pool, req.params.id, req.params.paymentId);
      if (!payment) throw new ApiError(404, 'PAYMENT_NOT_FOUND', `account ${req.params.id} has no payment ${req.params.paymentId}`);
      const pdf = await renderInvoicePdf(payment, seller);
      return reply
        .type('application/pdf')
        .header('content-disposition', `attachment; filename="invoice-${invoiceNumber(payment)}.pdf"`)
        .send(pdf);
    },
  );
};
