import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountAddon, AccountAddonList, AccountAddonParams, AccountParams, AddonActivation, formatMicros } from '@meterstream/schemas';
import { AccountNotFoundError, activateAddon, AddonNotOfferedError } from '@meterstream/ledger/commands/activate-addon';
import { AddonNotActivatedError, deactivateAddon } from '@meterstream/ledger/commands/deactivate-addon';
import { listAccountAddons, type AccountAddonRecord } from '@meterstream/platform/stores/addons';
import { getAccountPlan } from '@meterstream/platform/stores/plans';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toAddon = (a: AccountAddonRecord): AccountAddon => ({
  account_id: a.accountId, addon: a.addonId, name: a.offer?.name ?? null, state: a.state,
  monthly_price: a.offer === null ? null : formatMicros(a.offer.monthlyPrice), last_period: a.lastPeriod,
  activated_at: a.activatedAt.toISOString(), updated_at: a.updatedAt.toISOString(),
});

export const addonRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/addons',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "The account's add-ons and their state",
        tags: ['plans'],
        params: AccountParams,
        response: { 200: AccountAddonList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      if (!(await getAccountPlan(ctx.pool, req.params.id))) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      return { addons: (await listAccountAddons(ctx.pool, req.params.id)).map(toAddon) };
    },
  );

  app.post(
    '/v1/accounts/:id/addons',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Activate an add-on of the plan',
        description:
          "The add-on's monthly price (its plan's) is deducted now for the current period, and again at the start of each period " +
          'while it is active (seed 003), once per period: activating again within a period already paid costs nothing. Credits ' +
          'pay in the order usage burns them. When they do not cover it, the plan decides (addon_shortfall): overdraft takes it ' +
          'anyway; suspend takes nothing, answers the add-on with state suspended and notifies addon.suspended (activate it again ' +
          'once credits are added; each period start tries again too). Every deduction is a transaction of kind addon and an ' +
          'addon.deducted notification. 201 with the add-on as it is now; 200 when it was active already (nothing moved).',
        tags: ['plans'],
        params: AccountParams,
        body: AddonActivation,
        response: { 200: AccountAddon, 201: AccountAddon, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => {
      try {
        const { addon, settled } = await activateAddon(ctx.ledger, { accountId: req.params.id, addon: req.body.addon });
        return reply.code(settled === null ? 200 : 201).send(toAddon(addon));
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        if (e instanceof AddonNotOfferedError) throw new ApiError(400, 'ADDON_NOT_OFFERED', e.message);
        throw e;
      }
    },
  );

  app.delete(
    '/v1/accounts/:id/addons/:addon',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Deactivate an add-on',
        description: 'No deduction from the next period on; what was deducted for the current period is not refunded. Idempotent.',
        tags: ['plans'],
        params: AccountAddonParams,
        response: { 200: AccountAddon, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      try {
        return toAddon(await deactivateAddon(ctx.pool, { accountId: req.params.id, addon: req.params.addon, nowMs: ctx.ledger.now() }));
      } catch (e) {
        if (e instanceof AddonNotActivatedError) throw new ApiError(404, 'ADDON_NOT_FOUND', e.message);
        throw e;
      }
    },
  );
};
