import { formatMicros } from '@meterstream/schemas';
import { cents, startInvoicePdf, type Seller } from '@meterstream/platform/invoice-pdf';
import type { InvoiceLineRecord, InvoiceRecord } from '@meterstream/platform/stores/invoices';
import { invoiceNumberText } from './dunning.js';

/** Who issues the invoice (INVOICE_SELLER_*, as the payments' PDF prints it). */
export type InvoiceSeller = Seller;

const money = (micros: bigint, currency: string) => `${currency} ${formatMicros(micros)}`;

/**
 * The PDF of a monthly invoice (seed 004): number, invoice date and period, seller and buyer with
 * their VAT fields (printed even when empty or zero), one row per line (quantity in its unit, unit
 * price, amount, covered by credits, due), the totals and the amount charged.
 */
export function renderMonthlyInvoicePdf(inv: InvoiceRecord, lines: readonly InvoiceLineRecord[], seller: InvoiceSeller): Promise<Buffer> {
  const { doc, done } = startInvoicePdf({
    number: invoiceNumberText(inv) ?? `draft ${inv.id}`, seller, created: inv.invoiceDate, buyer: { accountId: inv.accountId, email: inv.buyerEmail },
    details: [
      `Invoice date: ${inv.invoiceDate.toISOString().slice(0, 10)}`,
      `Period: ${inv.month} (usage of the month, postpaid)`,
      `Payment due by: ${inv.dueAt.toISOString().slice(0, 10)}, charged to the card on file`,
      `Status: ${inv.state}`,
    ],
  });
  const c = inv.currency;
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
