import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { formatMicros, Id, INT64_MAX, MoneyString, SignedMoneyString, Unit } from '@meterstream/schemas';
import { assertCanAccess } from '../auth.js';
import { ApiError, errorResponses } from '../errors.js';
import { AccountParams } from './accounts.js';
import type { RouteContext } from './context.js';

const Transaction = z.object({
  timestamp: z.string().describe('when the usage happened (event time)'),
  action: z.string().describe('the product used'),
  quantity: MoneyString.describe('decimal quantity in `unit`'),
  unit: Unit,
  amount: MoneyString.describe('credits deducted'),
  balance_after: SignedMoneyString.describe('remaining balance after this deduction'),
  event_id: z.string(),
  rated_at: z.string(),
});

const TransactionPage = z.object({
  transactions: z.array(Transaction).describe('newest first'),
  next_cursor: z.string().nullable().describe('pass as ?cursor= for the next (older) page; null on the last page'),
});

const TransactionQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  // A cursor of the longest seq and event id is 208 characters of base64url.
  cursor: z.string().max(256).optional(),
});

interface LedgerRow {
  seq: bigint;
  event_id: string;
  product: string;
  quantity: bigint;
  unit: z.infer<typeof Unit>;
  amount: bigint;
  balance_after: bigint;
  event_time: Date;
  rated_at: Date;
}

// The cursor is the (seq, event_id) of the last row shown: a stable position even while new
// usage is rated, and never an offset that shifts under the reader. Opaque to clients.
const encodeCursor = (r: LedgerRow) => Buffer.from(JSON.stringify([r.seq.toString(), r.event_id])).toString('base64url');

/** A cursor this API could have returned: its seq fits in int8 and its event id is a contract id. */
function decodeCursor(cursor: string): [bigint, string] {
  try {
    const [seq, eventId] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (typeof seq === 'string' && /^\d{1,19}$/.test(seq) && BigInt(seq) <= INT64_MAX && Id.safeParse(eventId).success) {
      return [BigInt(seq), eventId as string];
    }
  } catch {
    // falls through to the error below
  }
  throw new ApiError(400, 'INVALID_CURSOR', 'cursor is not one this API returned');
}

export const transactionRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/transactions',
    {
      onRequest: ctx.keys.authenticate,
      schema: {
        summary: 'Transaction history: one row per rated usage event, newest first',
        tags: ['accounts'],
        params: AccountParams,
        querystring: TransactionQuery,
        response: { 200: TransactionPage, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const accountId = req.params.id;
      assertCanAccess(req.principal, accountId);
      const { limit, cursor } = req.query;
      const after = cursor === undefined ? null : decodeCursor(cursor);
      const exists = await ctx.pool.query('SELECT 1 FROM accounts WHERE id = $1', [accountId]);
      if (exists.rowCount === 0) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);
      const { rows } = await ctx.pool.query<LedgerRow>(
        `SELECT seq, event_id, product, quantity, unit, amount, balance_after, event_time, rated_at
           FROM usage_ledger
          WHERE account_id = $1 AND ($2::bigint IS NULL OR (seq, event_id) < ($2, $3::text))
          ORDER BY seq DESC, event_id DESC
          LIMIT $4`,
        [accountId, after?.[0] ?? null, after?.[1] ?? null, limit + 1],
      );
      const page = rows.slice(0, limit);
      return {
        transactions: page.map((r) => ({
          timestamp: r.event_time.toISOString(),
          action: r.product,
          quantity: formatMicros(r.quantity),
          unit: r.unit,
          amount: formatMicros(r.amount),
          balance_after: formatMicros(r.balance_after),
          event_id: r.event_id,
          rated_at: r.rated_at.toISOString(),
        })),
        next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null,
      };
    },
  );
};
