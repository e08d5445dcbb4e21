import PDFDocument from 'pdfkit';
import { formatMicros } from '@meterstream/schemas';
import type { PaymentRecord } from '@meterstream/platform/stores/payments';

export interface Seller {
  name: string;
  /** Lines of the postal address. */
  address: string[];
  /** Empty: none. */
  vatId: string;
}

/** MS-000001: the issuer, then the issuer's sequence number. */
export const invoiceNumber = (p: Pick<PaymentRecord, 'invoiceIssuer' | 'invoiceNumber'>) =>
  `${p.invoiceIssuer}-${p.invoiceNumber.toString().padStart(6, '0')}`;

/** Money as an invoice prints it: cents (the amounts paid through Stripe are whole cents). */
const money = (micros: bigint, currency: string) => `${currency} ${formatMicros(micros).slice(0, -4)}`;

/**
 * The PDF invoice of a payment (seed 004): number, dates, seller and buyer, the credits bought,
 * net, VAT rate and amount (printed even when zero) and the total paid, with the method. Built
 * with pdfkit's standard Helvetica, so no font file is needed and the text stays extractable.
 */
export function renderInvoicePdf(payment: PaymentRecord, seller: Seller): Promise<Buffer> {
  const number = invoiceNumber(payment);
  const doc = new PDFDocument({ size: 'A4', margin: 56, info: { Title: `Invoice ${number}`, Author: seller.name, CreationDate: payment.paidAt } });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  const net = payment.amount - payment.vatAmount;
  const date = payment.paidAt.toISOString().slice(0, 10);
  doc.font('Helvetica-Bold').fontSize(20).text('Invoice');
  doc.font('Helvetica').fontSize(10).moveDown(0.5);
  doc.text(`Invoice number: ${number}`);
  doc.text(`Invoice date: ${date}`);
  doc.text(`Payment date: ${date}`);
  doc.text(`Payment: ${payment.id} (${payment.method}), ${payment.status}`);
  doc.moveDown();

  doc.font('Helvetica-Bold').text('Seller');
  doc.font('Helvetica').text(seller.name);
  for (const line of seller.address) doc.text(line);
  doc.text(`VAT ID: ${seller.vatId === '' ? 'none' : seller.vatId}`);
  doc.moveDown();

  doc.font('Helvetica-Bold').text('Buyer');
  doc.font('Helvetica').text(`Account: ${payment.accountId}`);
  doc.text(`Email: ${payment.buyerEmail ?? 'none'}`);
  doc.text('VAT ID: none');
  doc.moveDown();

  doc.font('Helvetica-Bold').text('Description');
  doc.font('Helvetica').text(`Prepaid credits (top-up ${payment.topUpId}): ${formatMicros(payment.creditsGranted)} ${payment.currency} of credits, never expiring`);
  doc.moveDown();
  doc.text(`Net amount: ${money(net, payment.currency)}`);
  doc.text(`VAT rate: ${payment.vatRatePercent}%`);
  doc.text(`VAT amount: ${money(payment.vatAmount, payment.currency)}`);
  doc.font('Helvetica-Bold').text(`Total paid: ${money(payment.amount, payment.currency)}`);
  doc.end();
  return done;
}
