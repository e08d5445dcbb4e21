import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { ErrorEnvelope, errorEnvelope } from '@meterstream/schemas';

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

/** Every error, including Fastify's own (body limits, media types, routing), leaves as the envelope. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    if (err instanceof ApiError) {
      if (err.statusCode === 401) void reply.header('www-authenticate', 'Bearer');
      return reply.code(err.statusCode).send(errorEnvelope(err.code, err.message));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? '';
      const message = err.validation
        .map((v) => `${[where, ...v.instancePath.split('/').filter(Boolean)].join('.')}: ${v.message}`)
        .join('; ');
      return reply.code(400).send(errorEnvelope('VALIDATION_ERROR', message));
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) {
      req.log.error({ err }, 'request failed');
      return reply.code(500).send(errorEnvelope('INTERNAL', 'internal error'));
    }
    const code = err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'MALFORMED_JSON' : codeFromStatus(status);
    return reply.code(status).send(errorEnvelope(code, err.message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorEnvelope('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });
}
