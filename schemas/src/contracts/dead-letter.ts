import { z } from 'zod';
import { Id } from './common.js';

export const DeadLetterCountsQuery = z.object({
  account_id: Id.optional().describe('only the dead letters of this account'),
});

export const DeadLetterCounts = z.object({
  codes: z.array(z.object({
    code: z.string().describe('why the rater could not charge the event: UNKNOWN_ACCOUNT, UNKNOWN_PRODUCT, INVALID_EVENT, ...'),
    pending: z.number().int().describe('not replayed yet (npm run replay)'),
    replayed: z.number().int(),
    last_at: z.string().describe('when the latest of them was dead-lettered'),
  })).describe('one entry per code that has dead letters, by code'),
});
export type DeadLetterCounts = z.infer<typeof DeadLetterCounts>;
