import { z } from 'zod';
import { Id, StorableString } from './common.js';

/** A workspace's id (migration 011): ws_ and 24 hex digits. */
export const WorkspaceId = z.string().regex(/^ws_[0-9a-f]{24}$/, 'must be a workspace id (ws_ and 24 hex digits)');

export const WorkspaceInput = z.object({
  name: StorableString.trim().min(1).max(200),
});
export type WorkspaceInput = z.infer<typeof WorkspaceInput>;

export const Workspace = z.object({
  id: WorkspaceId,
  account_id: z.string(),
  name: z.string(),
  created_at: z.string(),
  deleted_at: z.string().nullable().describe('set by DELETE: the workspace is gone from the list; its usage and the account\'s credits stay'),
});
export type Workspace = z.infer<typeof Workspace>;

export const WorkspaceList = z.object({ workspaces: z.array(Workspace).describe('live workspaces, oldest first') });

export const WorkspaceParams = z.object({ id: Id, workspace_id: WorkspaceId });
