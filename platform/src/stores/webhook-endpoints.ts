import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AccountNotFoundError } from './accounts.js';
import { queryRows, type Db } from './rows.js';

export interface WebhookEndpointRecord {
  id: string;
  accountId: string;
  url: string;
  createdAt: Date;
}

/** An endpoint with its signing secret: shown at creation, read by the delivery worker. */
export interface WebhookEndpointWithSecret extends WebhookEndpointRecord {
  secret: string;
}

export class WebhookNotFoundError extends Error {
  override readonly name = 'WebhookNotFoundError';
}

const Columns = z.object({ id: z.string(), account_id: z.string(), url: z.string(), created_at: z.date() });
const toRecord = (r: z.infer<typeof Columns>): WebhookEndpointRecord => ({ id: r.id, accountId: r.account_id, url: r.url, createdAt: r.created_at });
const EndpointRow = Columns.transform(toRecord);
const EndpointWithSecretRow = Columns.extend({ secret: z.string() }).transform((r): WebhookEndpointWithSecret => ({ ...toRecord(r), secret: r.secret }));
// The account's row joined with its endpoints: an account without any gives one row of nulls.
const AccountEndpointRow = z.union([EndpointRow, z.object({ id: z.null() }).transform(() => null)]);

const COLUMNS = 'id, account_id, url, created_at';

/** A Standard Webhooks secret: whsec_ and 24 random bytes in base64 (the HMAC key). */
const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/** Adds an endpoint with a new secret; later notifications of the account go to it too. */
export async function createWebhookEndpoint(db: Db, accountId: string, url: string): Promise<WebhookEndpointWithSecret> {
  try {
    const [endpoint] = await queryRows(db, 'webhook_endpoints', EndpointWithSecretRow,
      `INSERT INTO webhook_endpoints (id, account_id, url, secret) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}, secret`,
      [`wh_${randomBytes(12).toString('hex')}`, accountId, url, newSecret()]);
    return endpoint!;
  } catch (e) {
    if ((e as { code?: string }).code === '23503') throw new AccountNotFoundError(accountId);
    throw e;
  }
}

/** The account's live endpoints, oldest first; undefined when the account does not exist. */
export async function listWebhookEndpoints(db: Db, accountId: string): Promise<WebhookEndpointRecord[] | undefined> {
  const rows = await queryRows(db, 'webhook_endpoints', AccountEndpointRow,
    `SELECT e.id, e.account_id, e.url, e.created_at
       FROM accounts a LEFT JOIN webhook_endpoints e ON e.account_id = a.id AND e.deleted_at IS NULL
      WHERE a.id = $1 ORDER BY e.created_at, e.id`,
    [accountId]);
  if (rows.length === 0) return undefined;
  return rows.filter((r) => r !== null);
}

/** Stops new notifications going to the endpoint; deliveries already due still go out. */
export async function deleteWebhookEndpoint(db: Db, accountId: string, id: string): Promise<WebhookEndpointRecord> {
  const [deleted] = await queryRows(db, 'webhook_endpoints', EndpointRow,
    `UPDATE webhook_endpoints SET deleted_at = now() WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
    [accountId, id]);
  if (!deleted) throw new WebhookNotFoundError(`account ${accountId} has no webhook ${id}`);
  return deleted;
}
