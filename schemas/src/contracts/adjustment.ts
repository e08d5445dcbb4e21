import { z } from 'zod';
import { formatMicros, MAX_MONEY_MICROS, toMicros } from '../money.js';

const SIGNED_DECIMAL = /^-?\d{1,15}(\.\d{1,6})?$/;

/** An operator's correction of a balance (issue 9): signed, never zero, always with its reason. */
export const AdjustmentInput = z.object({
  amount: z.string()
    .regex(SIGNED_DECIMAL, 'must be a signed decimal string with at most 6 decimal places, e.g. "-2.50"')
    .refine((v) => !SIGNED_DECIMAL.test(v) || toMicros(v) !== 0n, 'must not be zero')
    .refine((v) => !SIGNED_DECIMAL.test(v) || (toMicros(v) <= MAX_MONEY_MICROS && -toMicros(v) <= MAX_MONEY_MICROS),
      `must be at most ${formatMicros(MAX_MONEY_MICROS)} either way`)
    .describe('positive adds credits (a promotional grant without expiry), negative takes them as usage would'),
  reason: z.string().trim().min(1).max(500).describe('why: shown with the transaction in the account history'),
});
export type AdjustmentInput = z.infer<typeof AdjustmentInput>;
