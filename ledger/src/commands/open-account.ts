import { formatMicros, type BillingMode, type Currency, type Grant } from '@meterstream/schemas';
import { createAccount, type AccountRecord } from '@meterstream/platform/stores/accounts';
import { issueApiKey } from '@meterstream/platform/stores/api-keys';
import { claimSignupGift, emailTombstone } from '@meterstream/platform/stores/email-tombstones';
import { defaultPlanId, getPlan, PlanNotFoundError, type PlanRecord } from '@meterstream/platform/stores/plans';
import type { WriteOrder } from '../write-order.js';
import { addGrantCommand } from './add-grant.js';

export { PlanNotFoundError };

/** The plan named is of another currency or billing mode than the account. */
export class PlanMismatchError extends Error {
  override readonly name = 'PlanMismatchError';
}

export interface OpenAccountRequest {
  email: string;
  currency: Currency;
  billingMode: BillingMode;
  /** By default the plan of the currency and billing mode (defaultPlanId). */
  planId?: string;
  /** 1 to 28; by default 1 (calendar months). */
  billingAnchorDay?: number;
  /** EMAIL_TOMBSTONE_KEY: the HMAC key of the email tombstones. */
  tombstoneKey: string;
}

export interface OpenedAccount {
  account: AccountRecord;
  /** Shown once: Postgres keeps only its hash. */
  apiKey: string;
  /** null: the plan has no gift, or an account with this email got it before. */
  signupGift: Grant | null;
}

const DAY_MS = 86_400_000;

// The gift's key on the new account: one per account, which is new, so never a replay.
const GIFT_KEY = 'signup-gift';

/**
 * Opens an account in one transaction: the account on its plan, its first key and, once per
 * normalized email address, the plan's signup gift (seed 000), expiring the plan's validity days
 * after the account's creation. The once is the email tombstone's primary key: a concurrent
 * sign-up with the same address waits for this transaction and then finds the tombstone; a
 * closed account's tombstone stays. The gift is a ledger entry published like any grant.
 */
export async function openAccount(order: WriteOrder, req: OpenAccountRequest): Promise<OpenedAccount> {
  return order.run<OpenedAccount>({
    name: 'open-account',
    async transaction(c) {
      const planId = req.planId ?? defaultPlanId(req.currency, req.billingMode);
      const plan: PlanRecord | undefined = await getPlan(c, planId);
      if (!plan) throw new PlanNotFoundError(planId);
      if (plan.currency !== req.currency || plan.billingMode !== req.billingMode) {
        throw new PlanMismatchError(`plan ${plan.id} is for ${plan.currency} ${plan.billingMode} accounts, not ${req.currency} ${req.billingMode}`);
      }
      const account = await createAccount(c, {
        email: req.email, currency: req.currency, billingMode: req.billingMode, planId: plan.id,
        ...(req.billingAnchorDay === undefined ? {} : { billingAnchorDay: req.billingAnchorDay }),
      });
      const key = await issueApiKey(c, account.id);
      const opened = { account, apiKey: key.apiKey };
      const gifted = plan.signupGiftAmount > 0n && await claimSignupGift(c, emailTombstone(req.email, req.tombstoneKey), account.id);
      if (!gifted) return { commit: true, value: { ...opened, signupGift: null } };
      const expiresAt = new Date(account.createdAt.getTime() + plan.signupGiftValidityDays * DAY_MS).toISOString();
      const gift = await addGrantCommand(order, {
        accountId: account.id,
        input: { kind: 'gift', amount: formatMicros(plan.signupGiftAmount), expires_at: expiresAt, priority: 100 },
        idempotencyKey: GIFT_KEY,
      }).transaction(c);
      return { ...gift, value: { ...opened, signupGift: gift.value.grant } };
    },
  });
}
