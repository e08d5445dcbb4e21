import { Readable } from 'node:stream';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  AccountParams, formatMicros, Id, INT64_MAX, TransactionExportQuery, TransactionPage, TransactionQuery, type Transaction,
} from '@meterstream/schemas';
import { loadLedgerSeq } from '@meterstream/ledger/account-state';
import { readHistory, type HistoryPosition, type HistoryQuery, type HistoryRow } from '@meterstream/ledger/history';
import type { Db } from '@meterstream/platform/stores/rows';
import { csvRecord } from '../csv.js';
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

type HistoryFilter = Pick<HistoryQuery, 'kind' | 'from' | 'to'>;

/** The filters of a request as the repository takes them; a range that holds no instant is the caller's mistake. */
function toFilter(q: TransactionExportQuery): HistoryFilter {
  const from = q.from === undefined ? undefined : new Date(q.from);
  const to = q.to === undefined ? undefined : new Date(q.to);
  if (from !== undefined && to !== undefined && from >= to) {
    throw new ApiError(400, 'VALIDATION_ERROR', 'querystring/from must be before querystring/to');
  }
  return { kind: q.kind, from, to };
}

async function assertAccountExists(db: Db, accountId: string): Promise<void> {
  if ((await loadLedgerSeq(db, accountId)) === undefined) {
    throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);
  }
}

/** The CSV columns: every field of a transaction, empty where a kind has none. */
const CSV_COLUMNS = [
  'seq', 'timestamp', 'kind', 'action', 'direction', 'amount', 'balance_after', 'quantity', 'unit',
  'event_id', 'rated_at', 'entry_id', 'grant_id', 'overdraft_paid', 'reason',
] as const;

/** Rows read per repository call while exporting: the memory bound of one export. */
export const CSV_CHUNK_ROWS = 500;

/** The export's text, one chunk of rows at a time, paged by the same (seq, id) position as the list. */
async function* csvChunks(db: Db, accountId: string, filter: HistoryFilter): AsyncGenerator<string> {
  yield csvRecord(CSV_COLUMNS);
  let after: HistoryPosition | undefined;
  for (;;) {
    const rows = await readHistory(db, accountId, { ...filter, limit: CSV_CHUNK_ROWS, after });
    yield rows.map((r) => {
      const t: Partial<Record<string, string | number | null>> = toTransaction(r);
      return csvRecord(CSV_COLUMNS.map((c) => t[c]));
    }).join('');
    if (rows.length < CSV_CHUNK_ROWS) return;
    after = rows[rows.length - 1];
  }
}

export const transactionRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/transactions',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: 'Transaction history: usage and every other money movement (grants), newest first',
        description: 'One list per account: rated usage and ledger entries in the order of the ledger seq they share. '
          + '`kind` filters by what moved the money, `from`/`to` by when; the cursor stays valid with or without them.',
        tags: ['accounts'],
        params: AccountParams,
        querystring: TransactionQuery,
        response: { 200: TransactionPage, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const accountId = req.params.id;
      const { limit, cursor } = req.query;
      const filter = toFilter(req.query);
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      await assertAccountExists(ctx.pool, accountId);
      const rows = await readHistory(ctx.pool, accountId, { ...filter, limit: limit + 1, after });
      const page = rows.slice(0, limit);
      return {
        transactions: page.map(toTransaction),
        next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null,
      };
    },
  );

  app.get(
    '/v1/accounts/:id/transactions.csv',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: 'Transaction history as CSV: every row matching the filters, newest first',
        description: 'The rows and figures of GET /v1/accounts/{id}/transactions with the same `kind`, `from` and `to` filters, '
          + 'all pages streamed as one RFC 4180 file (header row, CRLF, money as exact decimal strings).',
        tags: ['accounts'],
        params: AccountParams,
        querystring: TransactionExportQuery,
        response: { 200: z.string().describe('text/csv; charset=utf-8'), ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req, reply) => {
      const accountId = req.params.id;
      const filter = toFilter(req.query);
      await assertAccountExists(ctx.pool, accountId);
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="transactions-${accountId}.csv"`)
        // A stream bypasses the response serializer; Readable.from pulls one chunk at a time.
        .send(Readable.from(csvChunks(ctx.pool, accountId, filter)) as unknown as string);
    },
  );
};
