import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import { createHash, randomUUID } from 'node:crypto';
import type { PoolClient } from '@meterstream/platform/postgres';
import { formatMicros, toMicros, type Grant, type GrantInput, type GrantKind } from '@meterstream/schemas';
import { balanceAt, compareBurnOrder, loadAccountStates, type AccountState } from '../account-state.js';
import { findEntry, IdempotencyConflictError, markEntriesPublished, publishEntries, recordEntries } from '../entries.js';
import { recordAlerts, recordNotifications } from '../outbox.js';
import type { Command, WriteOrder } from '../write-order.js';

export { IdempotencyConflictError };

export { AccountNotFoundError };

export interface AddGrantRequest {
  accountId: string;
  input: GrantInput;
  /** The caller's key: the same key with the same request adds the credits once. */
  idempotencyKey: string;
}

export interface AddedGrant {
  /** The grant as it was when added (a replay answers exactly what the first request did). */
  grant: Grant;
  /** true: an earlier request with this key added it; nothing moved now. */
  replayed: boolean;
}

/** The request as it is compared: a retry may spell the same amount or instant differently. */
interface GrantTerms {
  kind: GrantKind;
  amount: bigint;
  expiresAt: number | null;
  priority: number;
}

/**
 * Inserts a grant on a locked account inside the caller's transaction: the amount pays off the
 * overdraft first and the rest stays to burn. `expiresAt` is stored as given (ISO text); the
 * state after it carries the grant in burn order.
 */
export async function insertGrant(
  c: PoolClient, state: AccountState, g: GrantTerms & { expiresAtText: string | null },
): Promise<{ id: string; paidOff: bigint; remaining: bigint; createdAt: Date; next: AccountState }> {
  const id = randomUUID();
  const paidOff = state.overdraft < g.amount ? state.overdraft : g.amount;
  const remaining = g.amount - paidOff;
  const inserted = await c.query<{ created_at: Date; created_seq: bigint }>(
    `INSERT INTO grants (id, account_id, kind, amount, remaining, expires_at, priority)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at, created_seq`,
    [id, state.id, g.kind, g.amount, remaining, g.expiresAtText, g.priority],
  );
  const { created_at: createdAt, created_seq: createdSeq } = inserted.rows[0]!;
  if (paidOff > 0n) await c.query('UPDATE accounts SET overdraft = overdraft - $2 WHERE id = $1', [state.id, paidOff]);
  const next: AccountState = {
    ...state,
    overdraft: state.overdraft - paidOff,
    grants: remaining > 0n
      ? [...state.grants, { id, kind: g.kind, amount: g.amount, remaining, expiresAt: g.expiresAt, priority: g.priority, createdSeq }].sort(compareBurnOrder)
      : state.grants,
  };
  return { id, paidOff, remaining, createdAt, next };
}

const termsOf = (input: GrantInput): GrantTerms => ({
  kind: input.kind, amount: toMicros(input.amount), expiresAt: input.expires_at ? Date.parse(input.expires_at) : null, priority: input.priority,
});

const sameTerms = (a: GrantTerms, b: GrantTerms) =>
  a.kind === b.kind && a.amount === b.amount && a.expiresAt === b.expiresAt && a.priority === b.priority;

const requestHash = (t: GrantTerms) =>
  createHash('sha256').update(JSON.stringify([t.kind, t.amount.toString(), t.expiresAt, t.priority])).digest('hex');

interface GrantRow {
  kind: GrantKind;
  amount: bigint;
  expires_at: Date | null;
  priority: number;
  created_at: Date;
}

async function loadGrant(c: PoolClient, id: string): Promise<GrantRow> {
  const r = await c.query<GrantRow>('SELECT kind, amount, expires_at, priority, created_at FROM grants WHERE id = $1', [id]);
  return r.rows[0]!;
}

const toGrant = (id: string, accountId: string, t: GrantTerms, remaining: bigint, createdAt: Date): Grant => ({
  id, account_id: accountId, kind: t.kind, amount: formatMicros(t.amount), remaining: formatMicros(remaining),
  expires_at: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(), priority: t.priority, created_at: createdAt.toISOString(),
});

/**
 * Adds credits to an account, once per idempotency key: a ledger entry (kind grant) published on
 * ledger.entries after the commit, then the account's state cached. A prepaid account that went
 * below zero pays its overdraft off from the new grant first, so the balance is always grants
 * minus what is owed. The same key again with the same terms answers the first grant as it was
 * added; with other terms it throws IdempotencyConflictError. Retries racing each other queue on
 * the account's row lock, so exactly one of them adds the grant.
 */
export async function addGrant(order: WriteOrder, request: AddGrantRequest): Promise<AddedGrant> {
  return order.run<AddedGrant>(addGrantCommand(order, request));
}

/** addGrant as a command, whose transaction another command may run inside its own (open-account). */
export function addGrantCommand(order: WriteOrder, { accountId, input, idempotencyKey }: AddGrantRequest): Command<AddedGrant> {
  const terms = termsOf(input);
  return {
    name: 'add-grant',
    async transaction(c) {
      const nowMs = order.now();
      const state = (await loadAccountStates(c, [accountId], { forUpdate: true, nowMs })).get(accountId);
      if (!state) throw new AccountNotFoundError(accountId);
      const earlier = await findEntry(c, accountId, idempotencyKey);
      if (earlier) {
        // The key moved money otherwise (another kind of entry): a different request.
        if (earlier.kind !== 'grant' || earlier.grant_id === null) throw new IdempotencyConflictError(accountId, idempotencyKey);
        const row = await loadGrant(c, earlier.grant_id);
        const first: GrantTerms = { kind: row.kind, amount: row.amount, expiresAt: row.expires_at?.getTime() ?? null, priority: row.priority };
        if (!sameTerms(first, terms)) throw new IdempotencyConflictError(accountId, idempotencyKey);
        const remainingThen = row.amount - toMicros(earlier.overdraft_paid);
        return { commit: false, value: { grant: toGrant(earlier.grant_id, accountId, first, remainingThen, row.created_at), replayed: true } };
      }

      const { id, paidOff, remaining, createdAt, next } = await insertGrant(c, state, { ...terms, expiresAtText: input.expires_at ?? null });
      const [entry] = await recordEntries(c, [{
        account_id: accountId, kind: 'grant', amount: terms.amount, currency: state.currency, grant_id: id,
        overdraft_paid: paidOff, balance_after: balanceAt(next, nowMs), idempotency_key: idempotencyKey, request_hash: requestHash(terms),
      }]);
      next.ledgerSeq = BigInt(entry!.seq);
      // A grant only raises the balance: it re-arms the balance alerts it lifts the account above.
      await recordAlerts(c, [{ before: state, after: next }], nowMs, false);
      const grant = toGrant(id, accountId, terms, remaining, createdAt);
      // Told exactly when the grant commits, once: a replayed request returned above.
      await recordNotifications(c, [{
        accountId, cause: `grant:${entry!.entry_id}`,
        payload: {
          type: 'credits.granted', timestamp: entry!.created_at,
          data: {
            account_id: accountId, grant_id: id, entry_id: entry!.entry_id, kind: terms.kind, amount: entry!.amount,
            currency: entry!.currency, expires_at: grant.expires_at, balance_after: entry!.balance_after,
          },
        },
      }], nowMs);
      return {
        commit: true,
        value: { grant, replayed: false },
        publish: async (send) => {
          await publishEntries(send, order.topics.entries, [entry!]);
          await markEntriesPublished(order.pool, [entry!]);
        },
        states: [next],
      };
    },
  };
}
