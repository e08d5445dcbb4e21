import { z } from 'zod';
import { AccountParams, GrantKind } from './account.js';
import { Currency, SignedMoneyString } from './common.js';

/** What a notification tells; each trigger adds its type here and to the CHECK list of migration 009. */
export const NotificationType = z.enum(['credits.granted']);
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

/** The body of every webhook (the Standard Webhooks payload shape: type, timestamp, data). */
export const NotificationPayload = z.object({
  type: z.literal('credits.granted'),
  timestamp: z.string().describe('when the change happened (ISO 8601)'),
  data: CreditsGranted,
});
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
