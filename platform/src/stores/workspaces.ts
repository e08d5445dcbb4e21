import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { queryRows, type Db } from './rows.js';

/** A workspace (migration 011): shares its account's balance; deleting it keeps its usage and the credits. */
export interface WorkspaceRecord {
  id: string;
  accountId: string;
  name: string;
  createdAt: Date;
  deletedAt: Date | null;
}

const WorkspaceRow = z
  .object({ id: z.string(), account_id: z.string(), name: z.string(), created_at: z.date(), deleted_at: z.date().nullable() })
  .transform((r): WorkspaceRecord => ({ id: r.id, accountId: r.account_id, name: r.name, createdAt: r.created_at, deletedAt: r.deleted_at }));

const COLUMNS = 'id, account_id, name, created_at, deleted_at';

/** Creates a workspace under the account; undefined when the account does not exist. */
export async function createWorkspace(db: Db, accountId: string, name: string): Promise<WorkspaceRecord | undefined> {
  const [workspace] = await queryRows(db, 'workspaces', WorkspaceRow,
    `INSERT INTO workspaces (id, account_id, name) SELECT $1, a.id, $3 FROM accounts a WHERE a.id = $2 RETURNING ${COLUMNS}`,
    [`ws_${randomBytes(12).toString('hex')}`, accountId, name]);
  return workspace;
}

/** The account's live workspaces, oldest first. */
export async function listWorkspaces(db: Db, accountId: string): Promise<WorkspaceRecord[]> {
  return queryRows(db, 'workspaces', WorkspaceRow,
    `SELECT ${COLUMNS} FROM workspaces WHERE account_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, [accountId]);
}

/**
 * Soft-deletes the workspace (deleted_at set once; deleting again answers the first deletion).
 * Nothing else changes: its usage stays in the ledger and ClickHouse, the account's credits stay.
 * undefined when the account has no such workspace.
 */
export async function deleteWorkspace(db: Db, accountId: string, workspaceId: string): Promise<WorkspaceRecord | undefined> {
  const [workspace] = await queryRows(db, 'workspaces', WorkspaceRow,
    `UPDATE workspaces SET deleted_at = coalesce(deleted_at, now()) WHERE account_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [accountId, workspaceId]);
  return workspace;
}

/** These workspaces of the account, deleted ones included, by id (names for a usage breakdown). */
export async function workspacesById(db: Db, accountId: string, ids: readonly string[]): Promise<Map<string, WorkspaceRecord>> {
  if (ids.length === 0) return new Map();
  const rows = await queryRows(db, 'workspaces', WorkspaceRow,
    `SELECT ${COLUMNS} FROM workspaces WHERE account_id = $1 AND id = ANY($2::text[])`, [accountId, ids]);
  return new Map(rows.map((w) => [w.id, w]));
}
