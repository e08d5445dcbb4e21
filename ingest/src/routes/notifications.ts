import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  AccountParams, Notification, NotificationList, NotificationParams, WebhookEndpoint, WebhookEndpointCreated, WebhookEndpointInput, WebhookEndpointList,
  WebhookEndpointParams,
} from '@meterstream/schemas';
import { AccountNotFoundError, getAccount } from '@meterstream/platform/stores/accounts';
import {
  listNotifications, NotificationNotFoundError, replayNotification, type NotificationRecord,
} from '@meterstream/platform/stores/notifications';
import {
  createWebhookEndpoint, deleteWebhookEndpoint, listWebhookEndpoints, WebhookNotFoundError, type WebhookEndpointRecord,
} from '@meterstream/platform/stores/webhook-endpoints';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toEndpoint = (e: WebhookEndpointRecord): WebhookEndpoint => ({ id: e.id, account_id: e.accountId, url: e.url, created_at: e.createdAt.toISOString() });

const toNotification = (n: NotificationRecord): Notification => ({
  id: n.id, account_id: n.accountId, type: n.type, payload: n.payload, created_at: n.createdAt.toISOString(),
  deliveries: n.deliveries.map((d) => ({
    channel: d.channel, target: d.target, state: d.state, attempts: d.attempts, next_attempt_at: d.nextAttemptAt.toISOString(),
    last_error: d.lastError, delivered_at: d.deliveredAt?.toISOString() ?? null,
  })),
});

const WHO = 'Who may call it: its x-access policy (docs/api.md).';

/**
 * Webhook endpoints and notification replay. Notifications themselves are written by the ledger
 * commands (ledger/src/outbox.ts) and delivered by the scheduler (ledger/src/notifications/worker.ts).
 */
export const notificationRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const accountNotFound = (e: unknown): never => {
    if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
    throw e;
  };

  app.post(
    '/v1/accounts/:id/webhooks',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Add a webhook endpoint: every later notification of the account is POSTed to it, signed (Standard Webhooks)',
        description: `${WHO} The answer holds the signing secret, shown only here. Each request carries webhook-id, webhook-timestamp and ` +
          'webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body" under the base64 key after whsec_>. A delivery that fails ' +
          'is retried with exponential backoff and is dead after NOTIFY_MAX_ATTEMPTS.',
        tags: ['notifications'],
        params: AccountParams,
        body: WebhookEndpointInput,
        response: { 201: WebhookEndpointCreated, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => {
      const created = await createWebhookEndpoint(ctx.pool, req.params.id, req.body.url).catch(accountNotFound);
      return reply.code(201).send({ ...toEndpoint(created), secret: created.secret });
    },
  );

  app.get(
    '/v1/accounts/:id/webhooks',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "List the account's webhook endpoints (never their secrets)",
        description: WHO,
        tags: ['notifications'],
        params: AccountParams,
        response: { 200: WebhookEndpointList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const endpoints = await listWebhookEndpoints(ctx.pool, req.params.id);
      if (!endpoints) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      return { webhooks: endpoints.map(toEndpoint) };
    },
  );

  app.delete(
    '/v1/accounts/:id/webhooks/:webhookId',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Remove a webhook endpoint: no new notification goes to it',
        description: WHO,
        tags: ['notifications'],
        params: WebhookEndpointParams,
        response: { 200: WebhookEndpoint, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      try {
        return toEndpoint(await deleteWebhookEndpoint(ctx.pool, req.params.id, req.params.webhookId));
      } catch (e) {
        if (e instanceof WebhookNotFoundError) throw new ApiError(404, 'WEBHOOK_NOT_FOUND', e.message);
        throw e;
      }
    },
  );

  app.get(
    '/v1/accounts/:id/notifications',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "The account's latest notifications, each with its deliveries (state, attempts, last error)",
        description: WHO,
        tags: ['notifications'],
        params: AccountParams,
        response: { 200: NotificationList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const notifications = await listNotifications(ctx.pool, req.params.id, 100);
      if (notifications.length === 0 && !(await getAccount(ctx.pool, req.params.id))) {
        throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      }
      return { notifications: notifications.map(toNotification) };
    },
  );

  app.post(
    '/v1/accounts/:id/notifications/:notificationId/replay',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Send a notification again on each of its channels (delivered or dead alike), with a fresh count of attempts',
        description: `${WHO} The webhook-id stays the notification id, so a receiver can tell a replay from a new notification.`,
        tags: ['notifications'],
        params: NotificationParams,
        response: { 202: Notification, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => {
      try {
        return reply.code(202).send(toNotification(await replayNotification(ctx.pool, req.params.id, req.params.notificationId, ctx.ledger.now())));
      } catch (e) {
        if (e instanceof NotificationNotFoundError) throw new ApiError(404, 'NOTIFICATION_NOT_FOUND', e.message);
        throw e;
      }
    },
  );
};
