import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  AuthorizeInput, ErrorEnvelope, errorEnvelope, formatMicros, GATE_REFUSALS, Hold, HoldParams, HoldState, IdempotencyKey, type GateRefusal,
} from '@meterstream/schemas';
import {
  AccountNotFoundError, Gate, GATE_WRITES_IN_FLIGHT, type GateDeps, GateKeyReusedError, GatePriceOutOfRangeError, GateUndecidedError, GateUnknownProductError,
} from '@meterstream/ledger/commands/authorize';
import { releaseHold } from '@meterstream/ledger/commands/release-hold';
import { GateAutoTopUp } from '@meterstream/ledger/commands/trigger-auto-top-up';
import { createPool } from '@meterstream/platform/postgres';
import { findHold, type HoldRecord } from '@meterstream/platform/stores/holds';
import { assertCanAccess } from '../auth.js';
import { attributeErrors } from '../dependencies.js';
import { ApiError, errorResponses } from '../errors.js';
import { provisionerOf } from '../provisioning.js';
import type { RouteContext } from './context.js';

// Loose: the validated headers replace the request's, which must keep the others.
const AuthorizeHeaders = z.looseObject({
  'idempotency-key': IdempotencyKey.describe('required: the caller\'s key for this call, unique per account; a retry sends the same key and gets the same answer'),
});

/**
 * Each refusal as its own branch of its status's response, with its code, exact message and an
 * example; 403 also answers a key that cannot reach the account (FORBIDDEN).
 */
function refusalResponses(): Record<number, z.ZodType> {
  const byStatus = new Map<number, z.ZodType[]>();
  for (const [code, r] of Object.entries(GATE_REFUSALS) as [GateRefusal, (typeof GATE_REFUSALS)[GateRefusal]][]) {
    const branch = z.object({ error: z.object({ code: z.literal(code), message: z.literal(r.message) }) })
      .meta({ description: code, example: errorEnvelope(code, r.message) });
    byStatus.set(r.status, [...(byStatus.get(r.status) ?? []), branch]);
  }
  byStatus.get(403)?.push(ErrorEnvelope.describe('FORBIDDEN: the key cannot reach the account'));
  return Object.fromEntries([...byStatus].map(([status, branches]) => [status, z.union(branches as [z.ZodType, z.ZodType, ...z.ZodType[]])]));
}

/** Tenant service keys reach their tenant's accounts, provisioned on first use (h4's provisioner). */
async function assertAccount(req: FastifyRequest, ctx: RouteContext, accountId: string): Promise<void> {
  const p = req.principal;
  if (p.kind !== 'tenant') return assertCanAccess(p, accountId);
  const access = await provisionerOf(ctx).resolveOne(p.tenantId, accountId);
  if (access === 'foreign') throw new ApiError(403, 'FORBIDDEN', `this API key cannot access account ${accountId}`);
  if (access === 'unknown') throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);
}

const toHoldState = (h: HoldRecord): HoldState => ({
  hold_id: h.id, account_id: h.accountId, amount: formatMicros(h.amount), currency: h.currency, expires_at: h.expiresAt.toISOString(),
  status: h.status === 'refused' ? 'released' : h.status, captured: h.capturedAmount === null ? null : formatMicros(h.capturedAmount),
});

export const authorizeRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  // Made at the first call (the OpenAPI document is built with no service behind the context).
  // The gate's Redis errors name Redis, so that they answer 503 (fail closed), never a pass.
  let made: { deps: GateDeps; gate: Gate; autoTopUp: GateAutoTopUp } | undefined;
  const gate = () => {
    if (!made) {
      const writer = createPool(ctx.pool.options.connectionString ?? ctx.config.DATABASE_URL, GATE_WRITES_IN_FLIGHT, {
        applicationName: 'meterstream-ingest-gate', timeouts: ctx.config,
      });
      const deps = {
        pool: ctx.pool, writer: attributeErrors(writer, 'postgres'), cache: ctx.cache, gate: attributeErrors(ctx.cache.gate, 'redis'), log: app.log,
        now: () => ctx.ledger.now(),
      };
      made = { deps, gate: new Gate(deps), autoTopUp: new GateAutoTopUp(deps) };
    }
    return made;
  };
  app.addHook('onClose', async () => {
    await made?.gate.close();
    await made?.deps.writer?.end();
  });

  app.post(
    '/v1/authorize',
    {
      // The hot path: two request log lines per call would cost more than the decision (failures still log).
      logLevel: 'warn',
      onRequest: ctx.keys.allow('usage:write', { account: 'handler' }),
      // Before the schema, so that a missing key gets its own code rather than a validation message.
      preValidation: async (req) => {
        if (req.headers['idempotency-key'] === undefined) {
          throw new ApiError(400, 'IDEMPOTENCY_KEY_REQUIRED', 'send an Idempotency-Key header: a retry with the same key gets the same answer');
        }
      },
      schema: {
        summary: 'Price a call before it runs and hold its price on the account, or refuse it (the spend gate)',
        description:
          'Prices max_quantity of the product with the current price book and checks what the account may spend: prepaid, its ' +
          'balance minus open holds; postpaid, its free credits, then (with a payment method) its monthly limit minus this ' +
          "month's spend, minus open holds; any account, its allowed monthly limit. Then either holds that amount (200) or " +
          'refuses (402/403, each code below). Send the usage event with `hold_id` when the call succeeded: it is charged at most ' +
          'the hold. Release the hold when the call failed (POST /v1/holds/{id}/release): it costs nothing. A hold not captured ' +
          'or released expires after the plan\'s hold TTL (15 minutes by default) and frees its amount. Idempotent by the ' +
          'Idempotency-Key header (per account): a retry answers what the first request did, hold or refusal (Idempotent-Replayed: ' +
          'true); the same key for another product or quantity answers 409 IDEMPOTENCY_KEY_REUSED. 503 when the gate cannot decide ' +
          '(Redis or Postgres down): never a pass.',
        tags: ['gate'],
        headers: AuthorizeHeaders,
        body: AuthorizeInput,
        response: { 200: Hold, ...errorResponses(400, 401, 404, 409, 503), ...refusalResponses() },
      },
    },
    async (req, reply) => {
      const { account_id: accountId, product, max_quantity: maxQuantity } = req.body;
      await assertAccount(req, ctx, accountId);
      try {
        const r = await gate().gate.authorize({ accountId, product, maxQuantity, idempotencyKey: req.headers['idempotency-key'] });
        if (r.replayed) void reply.header('idempotent-replayed', 'true');
        if (r.kind === 'held') return reply.code(200).send(r.hold);
        // Out of credits: an automatic top-up, if the account has them on (it does not hold up the answer).
        if (r.code === 'PAYMENT_REQUIRED' && !r.replayed) gate().autoTopUp.refused(accountId);
        throw new ApiError(GATE_REFUSALS[r.code].status, r.code, GATE_REFUSALS[r.code].message);
      } catch (e) {
        if (e instanceof ApiError) throw e;
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        if (e instanceof GateUnknownProductError) throw new ApiError(400, 'UNKNOWN_PRODUCT', e.message);
        if (e instanceof GatePriceOutOfRangeError) throw new ApiError(400, 'AMOUNT_OUT_OF_RANGE', e.message);
        if (e instanceof GateKeyReusedError) throw new ApiError(409, 'IDEMPOTENCY_KEY_REUSED', e.message);
        if (e instanceof GateUndecidedError) throw new ApiError(503, 'GATE_UNAVAILABLE', e.message);
        throw e;
      }
    },
  );

  app.post(
    '/v1/holds/:id/release',
    {
      // The gate's other hot call (one per failed call): as /v1/authorize, failures still log.
      logLevel: 'warn',
      onRequest: ctx.keys.allow('usage:write', { account: 'handler' }),
      schema: {
        summary: 'Release a hold: the call failed and costs nothing',
        description:
          'Frees the hold\'s amount at once. Idempotent: releasing a released or expired hold answers it as it stands; a captured ' +
          'hold stays captured (409 HOLD_CAPTURED).',
        tags: ['gate'],
        params: HoldParams,
        response: { 200: HoldState, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (req) => {
      const p = req.principal;
      let hold: HoldRecord | undefined;
      if (p.kind === 'tenant') {
        // A tenant's reach is resolved by its provisioner: the hold's account first, then the release.
        const found = await findHold(ctx.pool, req.params.id);
        if (!found) throw new ApiError(404, 'HOLD_NOT_FOUND', `hold ${req.params.id} does not exist`);
        await assertAccount(req, ctx, found.accountId);
        hold = await releaseHold(gate().deps, req.params.id);
      } else {
        // One round trip: released only where the key reaches; a foreign hold comes back untouched and is refused.
        hold = await releaseHold(gate().deps, req.params.id, p.kind === 'account' ? { onlyAccount: p.accountId } : {});
        if (hold) assertCanAccess(p, hold.accountId);
      }
      if (!hold) throw new ApiError(404, 'HOLD_NOT_FOUND', `hold ${req.params.id} does not exist`);
      if (hold.status === 'captured') throw new ApiError(409, 'HOLD_CAPTURED', `hold ${hold.id} was captured by a usage event (charged ${formatMicros(hold.capturedAmount ?? 0n)} ${hold.currency})`);
      return toHoldState(hold);
    },
  );
};
