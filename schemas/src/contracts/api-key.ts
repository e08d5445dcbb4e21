import { z } from 'zod';
import { AccountParams } from './account.js';
import { MemberId, MemberRole, TenantParams } from './member.js';

const KeyId = z.string().regex(/^key_[0-9a-f]{24}$/, 'a key id is key_ and 24 hex digits');
export const ApiKeyParams = AccountParams.extend({ keyId: KeyId });
export const TenantKeyParams = TenantParams.extend({ keyId: KeyId });

/** service: produces usage and calls the gate (of an account, or of a tenant); member: acts with its member's role. */
export const ApiKeyKind = z.enum(['service', 'member']);
export type ApiKeyKind = z.infer<typeof ApiKeyKind>;

export const ApiKey = z.object({
  id: z.string().describe('the key id: names the key in these routes; the key itself is never shown again'),
  kind: ApiKeyKind,
  account_id: z.string().nullable().describe("null for a tenant's service key"),
  tenant_id: z.string().nullable().describe("set for a tenant's service key only"),
  member_id: z.string().nullable().describe('the member a member key acts as'),
  role: MemberRole.nullable().describe("a member key's role now (it follows the member's role); null for a service key"),
  created_at: z.string(),
  revoked_at: z.string().nullable().describe('null while the key works'),
});
export type ApiKey = z.infer<typeof ApiKey>;

export const ApiKeyCreated = ApiKey.extend({
  api_key: z.string().describe('the new key; shown only in this response, store it now'),
});
export type ApiKeyCreated = z.infer<typeof ApiKeyCreated>;

/** What POST /v1/accounts/{id}/keys issues; without a body, a member key of the account's owner (as before members existed). */
export const ApiKeyInput = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('member'), member_id: MemberId.describe('the member the key acts as, with its role') }),
  z.object({ kind: z.literal('service') }),
]);
export type ApiKeyInput = z.infer<typeof ApiKeyInput>;

export const ApiKeyList = z.object({
  keys: z.array(ApiKey.extend({ current: z.boolean().describe('the key this request was made with') })).describe('oldest first'),
});

export const ApiKeyRotated = ApiKeyCreated.extend({ replaced: ApiKey });
