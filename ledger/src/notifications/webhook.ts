import { Webhook } from 'standardwebhooks';
import type { ClaimedDelivery } from '@meterstream/platform/stores/notifications';

/** The receiver answered something other than 2xx, or not at all: the attempt failed. */
export class DeliveryFailedError extends Error {
  override readonly name = 'DeliveryFailedError';
}

/**
 * POSTs the notification to its endpoint, signed by the Standard Webhooks scheme: webhook-id (the
 * notification id, the same on every attempt, for the receiver's deduplication), webhook-timestamp
 * (Unix seconds, of this attempt) and webhook-signature (v1,<base64 HMAC-SHA256 of
 * "id.timestamp.body"> under the endpoint's whsec_ secret). Any 2xx is delivered.
 */
export async function sendWebhook(d: ClaimedDelivery, o: { nowMs: number; timeoutMs: number }): Promise<void> {
  if (!d.endpoint) throw new DeliveryFailedError(`webhook ${d.target} no longer exists`);
  const body = JSON.stringify(d.payload);
  const sentAt = new Date(o.nowMs);
  let res: Response;
  try {
    res = await fetch(d.endpoint.url, {
      method: 'POST',
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(o.timeoutMs),
      headers: {
        'content-type': 'application/json',
        'webhook-id': d.notificationId,
        'webhook-timestamp': String(Math.floor(o.nowMs / 1000)),
        'webhook-signature': new Webhook(d.endpoint.secret).sign(d.notificationId, sentAt, body),
      },
    });
  } catch (e) {
    throw new DeliveryFailedError(`POST ${d.endpoint.url}: ${(e as Error).message}`);
  }
  // The body is not read: only the status counts, and it must not keep the connection.
  await res.body?.cancel();
  if (res.status < 200 || res.status > 299) throw new DeliveryFailedError(`POST ${d.endpoint.url} answered ${res.status}`);
}
