import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountParams, formatMicros, Id, INT64_MAX, TransactionPage, TransactionQuery, type Transaction } from '@meterstream/schemas';
import { loadLedgerSeq } from '@meterstream/ledger/account-state';
import { readHistory, type HistoryPosition, type HistoryRow } from '@meterstream/ledger/history';
import { assertCanAccess } from '../auth.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

// The cursor is the (seq, id) of the last row shown, the id being a usage row's event id or an
// entry's id: a stable position even while new rows arrive, never an offset that shifts under
// the reader, and the same whatever kind filter the next page uses. Opaque to clients.
const encodeCursor = (r: HistoryRow) => Buffer.from(JSON.stringify([r.seq.toString(), r.id])).toString('base64url');

/** A cursor this API could have returned: its seq fits in int8 and its id is a contract id. */
function decodeCursor(cursor: string): HistoryPosition {
  try {
    const [seq, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (typeof seq === 'string' && /^\d{1,19}$/.test(seq) && BigInt(seq) <= INT64_MAX && Id.safeParse(id).success) {
      return { seq: BigInt(seq), id: id as string };
    }
  } catch {
    // falls through to the error below
  }
  throw new ApiError(400, 'INVALID_CURSOR', 'cursor is not one this API returned');
}

function toTransaction(r: HistoryRow): Transaction {
  const common = { seq: Number(r.seq), timestamp: r.at.toISOString(), balance_after: formatMicros(r.balance_after) };
  if (r.kind === 'usage') {
    return {
      kind: 'usage', ...common, action: r.product, quantity: formatMicros(r.quantity), unit: r.unit,
      amount: formatMicros(r.amount), direction: 'debit', event_id: r.id, rated_at: r.rated_at.toISOString(),
    };
  }
  return {
    kind: r.kind, ...common, action: r.kind, amount: formatMicros(r.amount < 0n ? -r.amount : r.amount),
    direction: r.amount < 0n ? 'debit' : 'credit', entry_id: r.id, grant_id: r.grant_id,
    overdraft_paid: formatMicros(r.overdraft_paid), reason: r.reason,
  };
}

export const transactionRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/transactions',
    {
      onRequest: ctx.keys.authenticate,
      schema: {
        summary: 'Transaction history: usage and every other money movement (grants), newest first',
        description: 'One list per account: rated usage and ledger entries in the order of the ledger seq they share. '
          + '`kind` filters by what moved the money; the cursor stays valid with or without it.',
        tags: ['accounts'],
        params: AccountParams,
        querystring: TransactionQuery,
        response: { 200: TransactionPage, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const accountId = req.params.id;
      assertCanAccess(req.principal, accountId);
      const { limit, cursor, kind } = req.query;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      if ((await loadLedgerSeq(ctx.pool, accountId)) === undefined) {
        throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);
      }
      const rows = await readHistory(ctx.pool, accountId, { limit: limit + 1, after, kind });
      const page = rows.slice(0, limit);
      return {
        transactions: page.map(toTransaction),
        next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null,
      };
    },
  );
};
