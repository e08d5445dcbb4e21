import { formatMicros } from '@meterstream/schemas';
import { cents, startInvoicePdf, type Seller } from '@meterstream/platform/invoice-pdf';
import type { PaymentRecord } from '@meterstream/platform/stores/payments';

export type { Seller };

/** MS-000001: the issuer, then the issuer's sequence number. */
export const invoiceNumber = (p: Pick<PaymentRecord, 'invoiceIssuer' | 'invoiceNumber'>) =>
  `${p.invoiceIssuer}-${p.invoiceNumber.toString().padStart(6, '0')}`;

/**
 * The PDF invoice of a payment (seed 004): number, dates, seller and buyer, the credits bought,
 * net, VAT rate and amount (printed even when zero) and the total paid, with the method.
 */
export function renderInvoicePdf(payment: PaymentRecord, seller: Seller): Promise<Buffer> {
  const date = payment.paidAt.toISOString().slice(0, 10);
  const { doc, done } = startInvoicePdf({
    number: invoiceNumber(payment), seller, created: payment.paidAt, buyer: { accountId: payment.accountId, email: payment.buyerEmail },
    details: [`Invoice date: ${date}`, `Payment date: ${date}`, `Payment: ${payment.id} (${payment.method}), ${payment.status}`],
  });
  const net = payment.amount - payment.vatAmount;
  doc.font('Helvetica-Bold').text('Description');
  doc.font('Helvetica').text(`Prepaid credits (top-up ${payment.topUpId}): ${formatMicros(payment.creditsGranted)} ${payment.currency} of credits, never expiring`);
  doc.moveDown();
  doc.text(`Net amount: ${cents(net, payment.currency)}`);
  doc.text(`VAT rate: ${payment.vatRatePercent}%`);
  doc.text(`VAT amount: ${cents(payment.vatAmount, payment.currency)}`);
  doc.font('Helvetica-Bold').text(`Total paid: ${cents(payment.amount, payment.currency)}`);
  doc.end();
  return done;
}
