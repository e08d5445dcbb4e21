import { z } from 'zod';
import { AccountParams, GrantKind } from './account.js';
import { Currency, SignedMoneyString } from './common.js';
import { AutoTopUpActionRequired, AutoTopUpFailed, PaymentRefunded } from './auto-top-up.js';

/**
 * What a notification tells; each trigger adds its type here, its data below and the type to the
 * CHECK list of notifications_outbox.type in a new migration (010 holds the latest list).
 */
export const NotificationType = z.enum([
  'credits.granted', 'balance.low', 'balance.zero', 'spend.alert_threshold', 'spend.limit_reached', 'gift.expiring',
  'addon.deducted', 'addon.suspended', 'plan.changed',
  'invoice.paid', 'invoice.payment_failed', 'account.suspended', 'account.reinstated',
  'auto_top_up.failed', 'auto_top_up.action_required', 'payment.refunded',
]);
export type NotificationType = z.infer<typeof NotificationType>;

export const NotificationChannel = z.enum(['webhook', 'email']);
export type NotificationChannel = z.infer<typeof NotificationChannel>;

export const DeliveryState = z.enum(['pending', 'delivered', 'dead']);
export type DeliveryState = z.infer<typeof DeliveryState>;

/** data of credits.granted: the grant as added and the balance right after it. */
export const CreditsGranted = z.object({
  account_id: z.string(),
  grant_id: z.string(),
  entry_id: z.string().describe('the ledger entry of the grant'),
  kind: GrantKind,
  amount: SignedMoneyString,
  currency: Currency,
  expires_at: z.string().nullable(),
  balance_after: SignedMoneyString,
});
export type CreditsGranted = z.infer<typeof CreditsGranted>;

/** data of balance.low and balance.zero: the balance as the change left it and the threshold it crossed (0 for zero). */
export const BalanceCrossed = z.object({
  account_id: z.string(),
  currency: Currency,
  balance: SignedMoneyString,
  threshold: SignedMoneyString.describe('the low-balance threshold crossed downwards; 0 for balance.zero (billable features paused)'),
});

/** data of spend.alert_threshold and spend.limit_reached: the month's spend against the setting it reached (once per month). */
export const SpendCrossed = z.object({
  account_id: z.string(),
  currency: Currency,
  month: z.string().describe('YYYY-MM'),
  spent: SignedMoneyString.describe('spent this month when the threshold was reached'),
  threshold: SignedMoneyString.describe('the alert threshold, or the allowed limit for spend.limit_reached'),
});

/** data of gift.expiring: a gift with credits left that expires within 24 hours. */
export const GiftExpiring = z.object({
  account_id: z.string(),
  grant_id: z.string(),
  currency: Currency,
  remaining: SignedMoneyString,
  expires_at: z.string(),
});

/** data of addon.deducted and addon.suspended (credits did not cover it and the plan suspends). */
export const AddonCharged = z.object({
  account_id: z.string(),
  addon: z.string(),
  month: z.string().describe('YYYY-MM'),
  currency: Currency,
  amount: SignedMoneyString.describe('the monthly price of the add-on'),
  entry_id: z.string().nullable().describe('the ledger entry of the deduction; null when suspended'),
  balance_after: SignedMoneyString,
});

/** data of plan.changed: the change as scheduled; it takes effect at the start of the next period. */
export const PlanChanged = z.object({
  account_id: z.string(),
  from_plan: z.string(),
  to_plan: z.string(),
  effective_at: z.string(),
});

/** data of invoice.paid and invoice.payment_failed: the month's invoice and what was charged. */
export const InvoiceCharged = z.object({
  account_id: z.string(),
  invoice_id: z.string(),
  number: z.string().nullable().describe('the invoice number, e.g. MS-000042'),
  month: z.string().describe('YYYY-MM, the month invoiced'),
  currency: Currency,
  amount_due: SignedMoneyString,
  due_at: z.string().describe('unpaid by then, API access is suspended'),
});

/** data of account.suspended (an invoice unpaid 7 days after its date) and account.reinstated (it was paid). */
export const AccountSuspension = z.object({
  account_id: z.string(),
  invoice_id: z.string().describe('the invoice that caused it'),
  month: z.string().describe('YYYY-MM, the month invoiced'),
  currency: Currency,
  amount_due: SignedMoneyString,
});

const payload = <T extends NotificationType, D extends z.ZodType>(type: T, data: D) =>
  z.object({ type: z.literal(type), timestamp: z.string().describe('when the change happened (ISO 8601)'), data });

/** The body of every webhook (the Standard Webhooks payload shape: type, timestamp, data). */
export const NotificationPayload = z.discriminatedUnion('type', [
  payload('credits.granted', CreditsGranted),
  payload('balance.low', BalanceCrossed),
  payload('balance.zero', BalanceCrossed),
  payload('spend.alert_threshold', SpendCrossed),
  payload('spend.limit_reached', SpendCrossed),
  payload('gift.expiring', GiftExpiring),
  payload('addon.deducted', AddonCharged),
  payload('addon.suspended', AddonCharged),
  payload('plan.changed', PlanChanged),
  payload('invoice.paid', InvoiceCharged),
  payload('invoice.payment_failed', InvoiceCharged),
  payload('account.suspended', AccountSuspension),
  payload('account.reinstated', AccountSuspension),
  payload('auto_top_up.failed', AutoTopUpFailed),
  payload('auto_top_up.action_required', AutoTopUpActionRequired),
  payload('payment.refunded', PaymentRefunded),
]);
export type NotificationPayload = z.infer<typeof NotificationPayload>;

export const WebhookEndpointInput = z.object({
  url: z.url({ protocol: /^https?$/ }).max(2048).describe('where the notifications are POSTed (http or https)'),
});

export const WebhookEndpointParams = AccountParams.extend({ webhookId: z.string().regex(/^wh_[0-9a-f]{24}$/, 'a webhook id is wh_ and 24 hex digits') });

export const WebhookEndpoint = z.object({
  id: z.string(),
  account_id: z.string(),
  url: z.string(),
  created_at: z.string(),
});
export type WebhookEndpoint = z.infer<typeof WebhookEndpoint>;

export const WebhookEndpointCreated = WebhookEndpoint.extend({
  secret: z.string().describe('the Standard Webhooks signing secret (whsec_...); shown only in this response, store it now'),
});

export const WebhookEndpointList = z.object({ webhooks: z.array(WebhookEndpoint).describe('oldest first') });

export const NotificationParams = AccountParams.extend({ notificationId: z.string().regex(/^msg_[0-9a-f]{32}$/, 'a notification id is msg_ and 32 hex digits') });

export const Delivery = z.object({
  channel: NotificationChannel,
  target: z.string().describe('the webhook endpoint id, or the email address'),
  state: DeliveryState,
  attempts: z.number().int(),
  next_attempt_at: z.string().describe('when a pending delivery is tried next'),
  last_error: z.string().nullable(),
  delivered_at: z.string().nullable(),
});

export const Notification = z.object({
  id: z.string().describe('the webhook-id header: the same on every attempt and replay'),
  account_id: z.string(),
  type: NotificationType,
  payload: NotificationPayload,
  created_at: z.string(),
  deliveries: z.array(Delivery),
});
export type Notification = z.infer<typeof Notification>;

export const NotificationList = z.object({ notifications: z.array(Notification).describe('newest first, at most 100') });
