import { z } from 'zod';
import { smtpMailer, type Mailer } from './email.js';
import type { DeliverySettings } from './worker.js';

const ms = (min: number, fallback: number) => z.coerce.number().int().min(min).max(3_600_000).default(fallback);

/** The settings of notification delivery, which the scheduler runs (scheduler.ts, job notifications). */
export const NotifyConfig = z.object({
  SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional().describe(
    'SMTP server notifications are emailed through (smtp://user:pass@host:587, smtps://...); unset: no email is sent (said once at start-up), webhooks still are.',
  ),
  SMTP_FROM: z.string().min(3).default('meterstream <notifications@localhost>').describe('The From address of notification emails.'),
  NOTIFY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8).describe(
    'Attempts of one notification delivery (webhook or email) before it is dead; POST /v1/accounts/{id}/notifications/{nid}/replay sends it again.',
  ),
  NOTIFY_RETRY_INITIAL_MS: ms(1, 30_000).describe('Exponential backoff of failed deliveries: about this long before the first retry, doubling each time.'),
  NOTIFY_RETRY_MAX_MS: ms(1, 3_600_000).describe('The longest wait between two attempts of a delivery.'),
  NOTIFY_WEBHOOK_TIMEOUT_MS: ms(100, 10_000).describe('A webhook receiver that has not answered in this long has failed the attempt.'),
});
export type NotifyConfig = z.infer<typeof NotifyConfig>;

/** What the scheduler delivers notifications with. */
export interface NotificationDelivery {
  settings: DeliverySettings;
  /** null: email disabled (SMTP_URL unset); email deliveries stay pending until a scheduler with SMTP runs. */
  mailer: Mailer | null;
}

export const notificationDelivery = (c: NotifyConfig): NotificationDelivery => ({
  settings: {
    maxAttempts: c.NOTIFY_MAX_ATTEMPTS,
    retryInitialMs: c.NOTIFY_RETRY_INITIAL_MS,
    retryMaxMs: c.NOTIFY_RETRY_MAX_MS,
    webhookTimeoutMs: c.NOTIFY_WEBHOOK_TIMEOUT_MS,
    batch: 100,
  },
  mailer: c.SMTP_URL ? smtpMailer(c.SMTP_URL, c.SMTP_FROM) : null,
});
