import { z } from 'zod';
import { AccountParams } from './account.js';
import { Id } from './common.js';

/**
 * What a member may do (README, "People, roles and keys"): owner and admin manage members and
 * keys; owner, admin and billing read and manage billing; every role but billing sends usage.
 * Only an owner acts on owners (promotes to, demotes from or removes the owner role, or keys an owner).
 */
export const MemberRole = z.enum(['owner', 'admin', 'billing', 'member']);
export type MemberRole = z.infer<typeof MemberRole>;

export const MemberId = z.string().regex(/^mem_[0-9a-f]{24}$/, 'a member id is mem_ and 24 hex digits');
export const MemberParams = AccountParams.extend({ memberId: MemberId });

export const MemberInput = z.object({
  email: z.string().trim().check(z.email()).max(320),
  role: MemberRole,
});
export type MemberInput = z.infer<typeof MemberInput>;

export const MemberRoleChange = z.object({ role: MemberRole });

export const Member = z.object({
  id: z.string(),
  account_id: z.string(),
  email: z.string(),
  role: MemberRole,
  created_at: z.string(),
  removed_at: z.string().nullable().describe('set when the member was removed: its keys were revoked at that instant'),
});
export type Member = z.infer<typeof Member>;

export const MemberList = z.object({
  members: z.array(Member).describe('oldest first; removed members only with ?include_removed=true'),
});

export const MemberListQuery = z.object({
  include_removed: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
});

/** Tenants: operators that sell usage to accounts of their own, with service keys of their own. */
export const TenantInput = z.object({
  id: Id.optional().describe('by default ten_ and 24 random hex digits'),
  name: z.string().min(1).max(200),
  default_plan_id: Id.describe('the plan of the accounts the tenant provisions (GET /v1/plans)'),
});
export type TenantInput = z.infer<typeof TenantInput>;

export const Tenant = z.object({
  id: z.string(),
  name: z.string(),
  default_plan_id: z.string(),
  created_at: z.string(),
});
export type Tenant = z.infer<typeof Tenant>;

export const TenantParams = z.object({ id: Id });
