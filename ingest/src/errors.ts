import { maxHeaderSize, STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyHttpOptions, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { ErrorEnvelope, errorEnvelope, ID_MAX_LENGTH } from '@meterstream/schemas';
import { originOf, type Dependency } from './dependencies.js';

/** An error meant for the client: its status, code and message go out as the envelope. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(readonly statusCode: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The envelope documented for every error status a route can answer with. */
export function errorResponses(...statuses: number[]): Record<number, z.ZodType> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorEnvelope.describe(STATUS_CODES[s] ?? 'error')]));
}

const codeFromStatus = (status: number) => (STATUS_CODES[status] ?? 'Error').toUpperCase().replace(/\W+/g, '_');

// Postgres SQLSTATE classes that say the server cannot serve right now (connection exception,
// insufficient resources, operator intervention such as a shutdown or statement_timeout, system
// error), as opposed to a query or a value it refused, which is a bug here and stays a 500.
const PG_OUTAGE_CLASSES = new Set(['08', '53', '57', '58']);
// Redis replies that mean the server refuses work for now rather than that the command is wrong.
const REDIS_OUTAGE_REPLY = /^(READONLY|MISCONF|OOM|LOADING|MASTERDOWN|BUSY|NOAUTH|NOPERM|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

type ErrorLike = { name?: unknown; code?: unknown; message?: unknown; severity?: unknown };

const isPgServerError = (e: ErrorLike) => typeof e.severity === 'string' && typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code);

/** The dependency of errors that say where they come from on their own, for unwrapped clients. */
function recognise(e: ErrorLike): Dependency | undefined {
  const name = typeof e.name === 'string' ? e.name : '';
  if (name.startsWith('KafkaJS')) return 'kafka';
  if (name === 'MaxRetriesPerRequestError' || name === 'ReplyError') return 'redis';
  if (name === 'ClickHouseError') return 'clickhouse';
  if (isPgServerError(e)) return 'postgres';
  return undefined;
}

/** The dependency whose outage (down, refusing, timing out) caused err; undefined for anything else. */
export function outageOf(err: unknown): Dependency | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  // A bug in the code around a client call is not the dependency's outage.
  if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError) return undefined;
  const e = err as ErrorLike;
  const dependency = originOf(err) ?? recognise(e);
  if (dependency === 'postgres' && isPgServerError(e)) return PG_OUTAGE_CLASSES.has((e.code as string).slice(0, 2)) ? dependency : undefined;
  if (dependency === 'redis' && e.name === 'ReplyError') return REDIS_OUTAGE_REPLY.test(String(e.message)) ? dependency : undefined;
  // Anything else a client rejects with is its connection failing or timing out.
  return dependency;
}

interface Answer {
  status: number;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/** Better codes and messages than the status name for Fastify's own 4xx errors. */
function frameworkAnswer(err: FastifyError, status: number): Answer {
  switch (err.code) {
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status, code: 'MALFORMED_JSON', message: err.message };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status, code: 'UNSUPPORTED_MEDIA_TYPE', message: `${err.message}; send application/json` };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { status, code: 'URI_TOO_LONG', message: `a path parameter is longer than ${ID_MAX_LENGTH} characters, the longest id there is` };
    case 'FST_ERR_BAD_URL':
      return { status, code: 'BAD_URL', message: 'the path is not valid percent-encoded UTF-8' };
    default:
      // Fastify's JSON parser throws a SyntaxError with status 400 for a body that is not JSON.
      if (status === 400 && err instanceof SyntaxError) return { status, code: 'MALFORMED_JSON', message: `request body is not valid JSON: ${err.message}` };
      return { status, code: codeFromStatus(status), message: err.message };
  }
}

function answerFor(err: unknown, req: FastifyRequest): Answer {
  if (err instanceof ApiError) {
    return { status: err.statusCode, code: err.code, message: err.message, ...(err.statusCode === 401 ? { headers: { 'www-authenticate': 'Bearer' } } : {}) };
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = err.validationContext ?? '';
    const message = err.validation
      .map((v) => `${[where, ...v.instancePath.split('/').filter(Boolean)].join('.')}: ${v.message}`)
      .join('; ');
    return { status: 400, code: 'VALIDATION_ERROR', message };
  }
  const dependency = outageOf(err);
  if (dependency) {
    req.log.warn({ err, dependency, method: req.method, url: req.url }, `${dependency} unavailable: answered 503`);
    return { status: 503, code: 'DEPENDENCY_UNAVAILABLE', message: `${dependency} is unavailable; retry later`, headers: { 'retry-after': '1' } };
  }
  const status = (err as Partial<FastifyError>).statusCode;
  if (status !== undefined && status >= 400 && status < 500) return frameworkAnswer(err as FastifyError, status);
  req.log.error({ err, method: req.method, url: req.url }, 'request failed with an unexpected error');
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

/** Sends any error as the envelope; also Fastify's frameworkErrors handler (bad URLs, long params). */
export function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, code, message, headers } = answerFor(err, req);
  if (headers) void reply.headers(headers);
  return reply.code(status).send(errorEnvelope(code, message));
}

/** Writes an error envelope straight to a socket Fastify never saw a request for, then closes it. */
function answerOnSocket(socket: Duplex, status: number, code: string, message: string, headers = ''): void {
  if (socket.writable) {
    const body = JSON.stringify(errorEnvelope(code, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n${headers}` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Node's HTTP parser refuses a request (bad framing, content-length, headers too large, timeout)
 * before Fastify sees it; Fastify's default answers with its own body, this with the envelope.
 */
function answerClientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  this.log.debug({ err }, 'client error');
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') answerOnSocket(socket, 408, 'REQUEST_TIMEOUT', 'the request did not arrive in time');
  else if (err.code === 'HPE_HEADER_OVERFLOW') answerOnSocket(socket, 431, 'HEADERS_TOO_LARGE', `the request line and headers exceed ${maxHeaderSize} bytes`);
  else answerOnSocket(socket, 400, 'MALFORMED_REQUEST', `not a valid HTTP/1.1 request: ${err.message}`);
}

/** Fastify options that route its own errors, raised before any route runs, to the envelope. */
export const envelopeServerOptions = {
  frameworkErrors: sendError,
  clientErrorHandler: answerClientError,
  // Node's own answers (a 400 without a body for HTTP/1.1 without Host, Fastify's 503 while
  // closing) are left to installErrorHandlers, which answers them with the envelope.
  http: { requireHostHeader: false },
  return503OnClosing: false,
} satisfies Partial<FastifyHttpOptions<Server>>;

/** A route's URL pattern as a regular expression over request paths. */
function pathPattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => (segment === '*' ? '.*' : segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

/** Every error, including Fastify's own (body limits, media types, routing), leaves as the envelope. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));

  // A known path asked with another method is a 405 naming the allowed ones, not a 404.
  const routes: { pattern: RegExp; method: string }[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ pattern: pathPattern(route.url), method });
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))].sort();
    if (allowed.length === 0) return reply.code(404).send(errorEnvelope('NOT_FOUND', `no route ${req.method} ${path}`));
    return reply
      .code(405)
      .header('allow', allowed.join(', '))
      .send(errorEnvelope('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`));
  });
  // Node hands CONNECT to 'connect' listeners and, without one, drops the connection unanswered.
  app.server.on('connect', (_req, socket: Duplex) => {
    const methods = [...new Set(routes.map((r) => r.method))].sort().join(', ');
    answerOnSocket(socket, 405, 'METHOD_NOT_ALLOWED', 'CONNECT is not supported: this server is not a proxy', `Allow: ${methods}\r\n`);
  });

  let closing = false;
  app.addHook('preClose', () => {
    closing = true;
  });
  app.addHook('onRequest', (req, reply, done) => {
    if (req.headers.host === undefined && req.raw.httpVersion === '1.1') {
      return done(new ApiError(400, 'MISSING_HOST', 'an HTTP/1.1 request needs a Host header'));
    }
    if (!closing) return done();
    void reply.header('connection', 'close').header('retry-after', '1');
    done(new ApiError(503, 'SHUTTING_DOWN', 'this ingest instance is shutting down; retry the request'));
  });
}
