import { z } from 'zod';
import { AccountParams } from './account.js';

export const ApiKeyParams = AccountParams.extend({ keyId: z.string().regex(/^key_[0-9a-f]{24}$/, 'a key id is key_ and 24 hex digits') });

export const ApiKey = z.object({
  id: z.string().describe('the key id: names the key in these routes; the key itself is never shown again'),
  account_id: z.string(),
  created_at: z.string(),
  revoked_at: z.string().nullable().describe('null while the key works'),
});
export type ApiKey = z.infer<typeof ApiKey>;

export const ApiKeyCreated = ApiKey.extend({
  api_key: z.string().describe('the new key; shown only in this response, store it now'),
});
export type ApiKeyCreated = z.infer<typeof ApiKeyCreated>;

export const ApiKeyList = z.object({
  keys: z.array(ApiKey.extend({ current: z.boolean().describe('the key this request was made with') })).describe('oldest first'),
});

export const ApiKeyRotated = ApiKeyCreated.extend({ replaced: ApiKey });
