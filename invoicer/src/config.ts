import { z } from 'zod';
import { BaseConfig } from '@meterstream/platform/config';
import { StripeConfig } from '@meterstream/platform/stripe';

/** The invoicer's settings (the CLI and the job runner), on top of the shared ones. */
export const InvoicerConfig = BaseConfig.extend({
  ...StripeConfig.shape,
  INVOICE_ISSUER: z.string().regex(/^[A-Z0-9]{1,16}$/, '1 to 16 capital letters or digits').default('MS').describe(
    'Prefix of invoice numbers (MS-000001): the same issuer as the payments\' invoices, one sequence without gaps.'),
  INVOICE_BATCH_SIZE: z.coerce.number().int().min(1).max(100_000).default(1000).describe('Accounts per ClickHouse read of an invoice run.'),
  INVOICE_STRIPE_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(8).describe('Stripe invoices billed at once by a run.'),
});
export type InvoicerConfig = z.infer<typeof InvoicerConfig>;
