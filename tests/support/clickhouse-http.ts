/**
 * A ClickHouse server for tests that need several processes on one ClickHouse (two sinks, a sink
 * and ingest, the chaos run): no ClickHouse server can be installed here, and chDB lets only one
 * process open a data directory. This process owns that directory through chDB (the real engine)
 * and serves the part of ClickHouse's HTTP interface that @clickhouse/client uses. Start it with
 * startClickHouseHttp() from ./clickhouse-server.ts, which also drives the fault injection below.
 *
 * Run: `node --import tsx tests/support/clickhouse-http.ts` with CHDB_PATH (the data directory) and
 * CLICKHOUSE_HTTP_PORT (default 0: any free port). It prints one JSON line, {"listening":"http://127.0.0.1:PORT"},
 * and stops on SIGTERM/SIGINT, or when its parent process is gone.
 *
 * The ClickHouse interface:
 *   GET /ping, GET /               "Ok.\n"
 *   POST / (GET /?query= too)      the statement in the body; or in ?query=, the body then being the
 *                                  data that follows it (INSERT ... FORMAT JSONCompactEachRow + rows);
 *                                  or a multipart/form-data body with the parts `query` and `param_*`
 *                                  (the client's use_multipart_params). Gzip request bodies are read.
 *   ?param_NAME=...                binds {NAME:Type}, in ClickHouse's escaped text form, as the server does
 *   ?database=, ?default_format=, ?query_id=
 *   any other ?name=value          a setting for this statement only; HTTP-only settings such as
 *                                  enable_http_compression are ignored. Each request runs in a chDB
 *                                  session of its own, so its settings, parameters and Memory tables end with it
 *   ?session_id=                   refused (400): sessions are not served
 *   200: the result, with X-ClickHouse-Query-Id, X-ClickHouse-Summary, X-ClickHouse-Format, X-ClickHouse-Timezone
 *   500: "Code: N. DB::Exception: ... (TYPE)" with X-ClickHouse-Exception-Code: N, which the client throws
 *        as a ClickHouseError with that code and type, as it would for a real server.
 *
 * Fault injection, JSON over the same port:
 *   GET  /control           {"inserts":{"mode","table","until"},"counts":{"statements","inserts","failed","held"}}
 *                           (failed: statements answered 500; held: INSERTs held so far)
 *   POST /control/inserts   {"mode":"fail"|"fail-after"|"hold"|"pass", "table"?: name, "forMs"?: number}
 *     fail        INSERTs are refused before they run (Code: 242, TABLE_IS_READ_ONLY)
 *     fail-after  INSERTs run, then answer that same error: the write landed, its answer was lost
 *     hold        INSERTs wait, not yet run, until the mode changes (then they run, or fail under fail)
 *     pass        the default
 *     table       only INSERTs into this table (its name without the database) are affected
 *     forMs       back to pass after this many milliseconds
 *   Every other statement always runs.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { gunzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { z } from 'zod';

const require = createRequire(import.meta.url);
const chdb = require('chdb') as typeof import('chdb');

const CHDB_PATH = z.string().min(1).parse(process.env.CHDB_PATH);
const PORT = z.coerce.number().int().min(0).max(65_535).default(0).parse(process.env.CLICKHOUSE_HTTP_PORT);

// Request parameters that are not settings.
const NOT_SETTINGS = new Set(['query', 'database', 'default_format', 'query_id', 'session_id', 'user', 'password', 'role']);
// Settings that only mean something to ClickHouse's HTTP layer; chDB would refuse some of them.
const HTTP_ONLY = new Set([
  'enable_http_compression', 'wait_end_of_query', 'send_progress_in_http_headers', 'http_response_buffer_size',
  'http_headers_progress_interval_ms', 'http_send_progress_interval_ms', 'http_zlib_compression_level',
  'http_native_compression_disable_checksumming_on_decompress', 'http_response_compression_method',
]);
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const INSERT_INTO = /^\s*INSERT\s+INTO\s+(?:TABLE\s+)?(?:[`"]?\w+[`"]?\.)?[`"]?(\w+)/i;
const REFUSED = { code: 242, text: 'Table is in readonly mode: INSERTs refused by tests/support/clickhouse-http.ts (fault injection). (TABLE_IS_READ_ONLY)' };

const Mode = z.enum(['pass', 'fail', 'fail-after', 'hold']);
type Mode = z.infer<typeof Mode>;
const InsertFaults = z.object({ mode: Mode, table: z.string().min(1).optional(), forMs: z.number().int().positive().optional() });

const faults: { mode: Mode; table: string | undefined; until: number | undefined } = { mode: 'pass', table: undefined, until: undefined };
const counts = { statements: 0, inserts: 0, failed: 0, held: 0 };
let modeChanged = new AbortController();
let revert: NodeJS.Timeout | undefined;

function setFaults(f: z.infer<typeof InsertFaults>): void {
  clearTimeout(revert);
  Object.assign(faults, { mode: f.mode, table: f.table, until: f.forMs === undefined ? undefined : Date.now() + f.forMs });
  if (f.forMs !== undefined) revert = setTimeout(() => setFaults({ mode: 'pass' }), f.forMs);
  modeChanged.abort();
  modeChanged = new AbortController();
}

class ClickHouseFailure extends Error {
  constructor(readonly code: number, text: string) {
    super(`Code: ${code}. DB::Exception: ${text}`);
  }
}

/** Waits out a hold; says whether the insert is to be refused before it runs, after it, or not at all. */
async function insertFault(table: string): Promise<'before' | 'after' | undefined> {
  let held = false;
  for (;;) {
    if (faults.table !== undefined && faults.table !== table) return undefined;
    if (faults.mode === 'fail') return 'before';
    if (faults.mode === 'fail-after') return 'after';
    if (faults.mode === 'pass') return undefined;
    if (!held) counts.held++;
    held = true;
    await once(modeChanged.signal, 'abort');
  }
}

const quote = (v: string): string => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
/** A setting's value for SET: a number as it is, anything else quoted. */
const settingValue = (v: string): string => (/^-?\d+(?:\.\d+)?$/.test(v) ? v : quote(v));

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  const encoding = req.headers['content-encoding'];
  if (encoding === undefined) return body;
  if (encoding === 'gzip') return gunzipSync(body);
  throw new HttpError(400, `Content-Encoding ${encoding} is not supported by this test server`);
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The parts of the multipart/form-data body that @clickhouse/client builds (name -> text). */
function multipartParts(body: string, contentType: string): Map<string, string> {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  if (!boundary) throw new HttpError(400, 'multipart body without a boundary');
  const parts = new Map<string, string>();
  for (const raw of body.split(`--${boundary[1] ?? boundary[2]}`).slice(1)) {
    if (raw.startsWith('--')) break;
    const split = raw.indexOf('\r\n\r\n');
    const name = /name="([^"]+)"/.exec(raw.slice(0, split));
    if (split < 0 || !name) throw new HttpError(400, 'malformed multipart part');
    parts.set(name[1]!, raw.slice(split + 4).replace(/\r\n$/, ''));
  }
  return parts;
}

interface Statement {
  sql: string;
  params: Map<string, string>;
  settings: Map<string, string>;
  database: string | undefined;
  format: string;
  queryId: string;
}

async function parseRequest(req: IncomingMessage): Promise<Statement> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.searchParams.has('session_id')) throw new HttpError(400, 'session_id is not supported by this test server');
  const body = (await readBody(req)).toString('utf8');
  const params = new Map<string, string>();
  const settings = new Map<string, string>();
  for (const [k, v] of url.searchParams) {
    if (k.startsWith('param_')) params.set(k.slice(6), v);
    else if (!NOT_SETTINGS.has(k) && !HTTP_ONLY.has(k)) {
      if (!SETTING_NAME.test(k)) throw new HttpError(400, `invalid setting name ${JSON.stringify(k)}`);
      settings.set(k, v);
    }
  }
  let sql: string;
  const contentType = req.headers['content-type'] ?? '';
  if (contentType.startsWith('multipart/form-data')) {
    const parts = multipartParts(body, contentType);
    for (const [k, v] of parts) if (k.startsWith('param_')) params.set(k.slice(6), v);
    sql = parts.get('query') ?? '';
  } else {
    const inUrl = url.searchParams.get('query');
    sql = inUrl === null ? body : body === '' ? inUrl : `${inUrl}\n${body}`;
  }
  if (sql.trim() === '') throw new HttpError(400, 'empty query');
  const database = url.searchParams.get('database') ?? undefined;
  if (database !== undefined && !/^\w+$/.test(database)) throw new HttpError(400, `invalid database name ${JSON.stringify(database)}`);
  for (const k of params.keys()) if (!SETTING_NAME.test(k)) throw new HttpError(400, `invalid parameter name ${JSON.stringify(k)}`);
  return {
    sql, params, settings,
    database,
    format: url.searchParams.get('default_format') ?? 'TabSeparated',
    queryId: url.searchParams.get('query_id') ?? randomUUID(),
  };
}

/** Runs one statement in a chDB session of its own, so its settings and parameters end with it. */
async function run(s: Statement): Promise<{ bytes: Uint8Array; rows: number; bytesRead: number; elapsed: number }> {
  const prelude = [
    // The parameters travel inside SET statements, which can be far longer than the default limit.
    'SET max_query_size = 1073741824',
    ...[...s.settings].map(([k, v]) => `SET ${k} = ${settingValue(v)}`),
    // SET param_x takes the same escaped text as ?param_x=, as a string literal.
    ...[...s.params].map(([k, v]) => `SET param_${k} = ${quote(v)}`),
    ...(s.database ? [`USE ${s.database}`] : []),
  ];
  const session = new chdb.Session(CHDB_PATH);
  try {
    const r = await session.queryAsync(`${prelude.join('; ')}; ${s.sql}`, { format: s.format });
    return { bytes: r.bytes(), rows: r.rowsRead, bytesRead: r.bytesRead, elapsed: r.elapsed };
  } finally {
    session.close();
  }
}

function failure(err: unknown): { code: number; message: string } {
  const message = err instanceof Error ? err.message : String(err);
  const code = /Code: (\d+)\./.exec(message);
  if (code) return { code: Number(code[1]), message };
  return { code: 1001, message: `Code: 1001. DB::Exception: ${message.replace(/\.?$/, '.')} (STD_EXCEPTION)` };
}

async function serveStatement(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const s = await parseRequest(req);
  counts.statements++;
  const table = INSERT_INTO.exec(s.sql)?.[1];
  let refuse: 'before' | 'after' | undefined;
  if (table !== undefined) {
    counts.inserts++;
    refuse = await insertFault(table);
  }
  if (refuse === 'before') throw new ClickHouseFailure(REFUSED.code, REFUSED.text);
  const r = await run(s);
  if (refuse === 'after') throw new ClickHouseFailure(REFUSED.code, REFUSED.text);
  const written = table === undefined ? '0' : String(r.rows);
  res.writeHead(200, {
    'Content-Type': 'text/plain; charset=UTF-8',
    'X-ClickHouse-Query-Id': s.queryId,
    'X-ClickHouse-Format': /\bFORMAT\s+(\w+)\s*$/i.exec(s.sql)?.[1] ?? s.format,
    'X-ClickHouse-Timezone': 'UTC',
    'X-ClickHouse-Summary': JSON.stringify({
      read_rows: String(r.rows), read_bytes: String(r.bytesRead), written_rows: written, written_bytes: table === undefined ? '0' : String(r.bytesRead),
      total_rows_to_read: '0', result_rows: table === undefined ? String(r.rows) : '0', result_bytes: String(r.bytes.byteLength),
      elapsed_ns: String(Math.round(r.elapsed * 1e9)),
    }),
  });
  res.end(Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
}

async function serveControl(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  if (req.method === 'POST' && path === '/control/inserts') {
    let body: unknown;
    try {
      body = JSON.parse((await readBody(req)).toString('utf8'));
    } catch (e) {
      throw new HttpError(400, `the body is not JSON: ${(e as Error).message}`);
    }
    const parsed = InsertFaults.safeParse(body);
    if (!parsed.success) throw new HttpError(400, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    setFaults(parsed.data);
    process.stdout.write(`${JSON.stringify({ inserts: parsed.data })}\n`);
  } else if (!(req.method === 'GET' && path === '/control')) {
    throw new HttpError(404, `no control route ${req.method} ${path}`);
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ inserts: { mode: faults.mode, table: faults.table ?? null, until: faults.until ?? null }, counts }));
}

const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const handle = path.startsWith('/control')
    ? serveControl(req, res, path)
    : req.method === 'GET' && (path === '/ping' || (path === '/' && !req.url?.includes('query=')))
      ? Promise.resolve(void res.end('Ok.\n'))
      : serveStatement(req, res);
  handle.catch((err: unknown) => {
    if (err instanceof HttpError) {
      res.writeHead(err.status, { 'Content-Type': 'text/plain' });
      res.end(`${err.message}\n`);
      return;
    }
    const f = failure(err);
    counts.failed++;
    res.writeHead(500, { 'Content-Type': 'text/plain; charset=UTF-8', 'X-ClickHouse-Exception-Code': String(f.code) });
    res.end(`${f.message}\n`);
  });
});

server.listen(PORT, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.stdout.write(`${JSON.stringify({ listening: `http://127.0.0.1:${address.port}` })}\n`);
});

// A test process that died without stopping this server must not leave it running.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1_000).unref();

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    setFaults({ mode: 'pass' }); // held INSERTs finish instead of hanging the close
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
