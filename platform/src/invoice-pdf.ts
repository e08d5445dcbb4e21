import PDFDocument from 'pdfkit';
import { formatMicros } from '@meterstream/schemas';

/** Who issues the invoices (INVOICE_SELLER_*). */
export interface Seller {
  name: string;
  /** Lines of the postal address. */
  address: string[];
  /** Empty: none. */
  vatId: string;
}

/** Money as an invoice prints what is charged: cents (the amounts paid through Stripe are whole cents). */
export const cents = (micros: bigint, currency: string) => `${currency} ${formatMicros(micros).slice(0, -4)}`;

/**
 * Starts an invoice PDF (seed 004), the part the payment receipts and the monthly invoices share:
 * the title, the number and the caller's detail lines, then seller and buyer with their VAT fields
 * (printed even when empty). The caller writes the rest, then doc.end(); `done` is the file.
 * pdfkit's standard Helvetica, so no font file is needed and the text stays extractable.
 */
export function startInvoicePdf(o: {
  number: string; seller: Seller; created: Date; details: readonly string[]; buyer: { accountId: string; email: string | null };
}): { doc: PDFKit.PDFDocument; done: Promise<Buffer> } {
  const doc = new PDFDocument({ size: 'A4', margin: 56, info: { Title: `Invoice ${o.number}`, Author: o.seller.name, CreationDate: o.created } });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  doc.font('Helvetica-Bold').fontSize(20).text('Invoice');
  doc.font('Helvetica').fontSize(10).moveDown(0.5);
  doc.text(`Invoice number: ${o.number}`);
  for (const line of o.details) doc.text(line);
  doc.moveDown();
  doc.font('Helvetica-Bold').text('Seller');
  doc.font('Helvetica').text(o.seller.name);
  for (const line of o.seller.address) doc.text(line);
  doc.text(`VAT ID: ${o.seller.vatId === '' ? 'none' : o.seller.vatId}`);
  doc.moveDown();
  doc.font('Helvetica-Bold').text('Buyer');
  doc.font('Helvetica').text(`Account: ${o.buyer.accountId}`);
  doc.text(`Email: ${o.buyer.email ?? 'none'}`);
  doc.text('VAT ID: none');
  doc.moveDown();
  return { doc, done };
}
