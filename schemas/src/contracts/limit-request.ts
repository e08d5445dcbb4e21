import { z } from 'zod';
import { Id, IsoTimestamp, MoneyInput, MoneyString, StorableString } from './common.js';

/**
 * Which limit a request raises: the postpaid monthly limit (seed 001, accounts.monthly_limit, by
 * default the plan's) or the hard monthly allowed limit (seed 004, accounts.allowed_limit).
 */
export const LimitKind = z.enum(['monthly_limit', 'allowed_limit']);
export type LimitKind = z.infer<typeof LimitKind>;

export const LimitRequestStatus = z.enum(['pending', 'approved', 'rejected']);
export type LimitRequestStatus = z.infer<typeof LimitRequestStatus>;

/** Short enough that the history entry naming the request and both limits stays within 500 characters. */
export const LIMIT_REQUEST_REASON_MAX_LENGTH = 300;

export const LimitRequestInput = z.object({
  limit: LimitKind.default('monthly_limit').describe('which limit to raise'),
  requested_limit: MoneyInput.describe('the new limit asked for, in the account currency; must be above the current one'),
  reason: StorableString.trim().min(1).max(LIMIT_REQUEST_REASON_MAX_LENGTH).describe('why, for the operator deciding'),
});
export type LimitRequestInput = z.infer<typeof LimitRequestInput>;

/** Optional: a decision may come without a body. */
export const LimitDecisionInput = z.object({
  note: StorableString.trim().max(LIMIT_REQUEST_REASON_MAX_LENGTH).optional().describe('told to the account in its history'),
}).nullish();
export type LimitDecisionInput = z.infer<typeof LimitDecisionInput>;

export const LimitRequest = z.object({
  id: z.string(),
  account_id: z.string(),
  limit: LimitKind,
  requested_limit: MoneyString,
  current_limit: MoneyString.describe('the effective limit when the request was made'),
  reason: z.string(),
  status: LimitRequestStatus,
  requested_by: z.string().describe("the id of the API key that asked, or 'admin'"),
  decided_by: z.string().nullable(),
  decision_note: z.string().nullable(),
  created_at: IsoTimestamp,
  decided_at: IsoTimestamp.nullable(),
});
export type LimitRequest = z.infer<typeof LimitRequest>;

export const LimitRequestList = z.object({
  limit_requests: z.array(LimitRequest).describe('newest first'),
});
export type LimitRequestList = z.infer<typeof LimitRequestList>;

export const LimitRequestParams = z.object({ id: Id, rid: Id });
