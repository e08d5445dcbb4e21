import PDFDocument from 'pdfkit';
import { formatMicros } from '@meterstream/schemas';
import type { InvoiceLineRecord, InvoiceRecord } from '@meterstream/platform/stores/invoices';
import { invoiceNumberText } from './dunning.js';

/** Who issues the invoice (INVOICE_SELLER_* as the payments' PDF prints it). */
export interface InvoiceSeller {
  name: string;
  address: string[];
  /** Empty: none. */
  vatId: string;
}

const money = (micros: bigint, currency: string) => `${currency} ${formatMicros(micros)}`;
const cents = (micros: bigint, currency: string) => `${currency} ${formatMicros(micros).slice(0, -4)}`;

/**
 * The PDF of a monthly invoice (seed 004): number, invoice date and period, seller and buyer with
 * their VAT fields (printed even when empty or zero), one row per line (quantity in its unit, unit
 * price, amount, covered by credits, due), the totals and the amount charged. pdfkit's standard
 * Helvetica, so the text stays extractable.
 */
export function renderMonthlyInvoicePdf(inv: InvoiceRecord, lines: readonly InvoiceLineRecord[], seller: InvoiceSeller): Promise<Buffer> {
  const number = invoiceNumberText(inv) ?? `draft ${inv.id}`;
  const doc = new PDFDocument({ size: 'A4', margin: 56, info: { Title: `Invoice ${number}`, Author: seller.name, CreationDate: inv.invoiceDate } });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  const c = inv.currency;
  doc.font('Helvetica-Bold').fontSize(20).text('Invoice');
  doc.font('Helvetica').fontSize(10).moveDown(0.5);
  doc.text(`Invoice number: ${number}`);
  doc.text(`Invoice date: ${inv.invoiceDate.toISOString().slice(0, 10)}`);
  doc.text(`Period: ${inv.month} (usage of the month, postpaid)`);
  doc.text(`Payment due by: ${inv.dueAt.toISOString().slice(0, 10)}, charged to the card on file`);
  doc.text(`Status: ${inv.state}`);
  doc.moveDown();
  doc.font('Helvetica-Bold').text('Seller');
  doc.font('Helvetica').text(seller.name);
  for (const line of seller.address) doc.text(line);
  doc.text(`VAT ID: ${seller.vatId === '' ? 'none' : seller.vatId}`);
  doc.moveDown();
  doc.font('Helvetica-Bold').text('Buyer');
  doc.font('Helvetica').text(`Account: ${inv.accountId}`);
  doc.text(`Email: ${inv.buyerEmail ?? 'none'}`);
  doc.text('VAT ID: none');
  doc.moveDown();
  doc.font('Helvetica-Bold').text('Lines');
  doc.font('Helvetica');
  for (const l of lines) {
    const qty = l.unit === null ? '' : `${formatMicros(l.quantity)} ${l.unit} at ${money(l.unitPrice, c)} per ${l.per} ${l.unit}: `;
    doc.text(`${l.lineNo}. ${l.description}: ${qty}amount ${money(l.amount, c)}, covered by credits ${money(l.covered, c)}, due ${money(l.due, c)}`);
  }
  doc.moveDown();
  doc.text(`Subtotal: ${money(inv.subtotal, c)}`);
  doc.text(`Covered by free credits: ${money(inv.covered, c)}`);
  doc.text(`Net amount: ${money(inv.total, c)}`);
  doc.text('VAT rate: 0%');
  doc.text(`VAT amount: ${cents(0n, c)}`);
  doc.font('Helvetica-Bold').text(`Total due: ${cents(inv.amountDue, c)}`);
  doc.end();
  return done;
}
