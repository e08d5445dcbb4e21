import { createHash } from 'node:crypto';
import type { PoolClient } from '@meterstream/platform/postgres';
import { getInvoice, invoiceOfStripe, type InvoiceRecord } from '@meterstream/platform/stores/invoices';
import { recordStripeEvent } from '@meterstream/platform/stores/stripe-events';
import { formatMicros, type LedgerEntry } from '@meterstream/schemas';
import { balanceAt, loadAccountStates, type AccountState } from '@meterstream/ledger/account-state';
import { markEntriesPublished, publishEntries, recordEntries } from '@meterstream/ledger/entries';
import { recordNotifications } from '@meterstream/ledger/outbox';
import type { WriteOrder } from '@meterstream/ledger/write-order';

/** The gate's cached account config, dropped after a suspension changes (gate-cache.ts forgetConfig). */
export interface GateConfigCache {
  forgetConfig(accountId: string): Promise<void>;
}

/** seed 001: unpaid this long after the invoice date, the account is suspended. */
export const GRACE_MS = 7 * 86_400_000;

export const invoiceNumberText = (i: Pick<InvoiceRecord, 'invoiceIssuer' | 'invoiceNumber'>) =>
  i.invoiceIssuer === null || i.invoiceNumber === null ? null : `${i.invoiceIssuer}-${i.invoiceNumber.toString().padStart(6, '0')}`;

const chargeData = (i: InvoiceRecord) => ({
  account_id: i.accountId, invoice_id: i.id, number: invoiceNumberText(i), month: i.month, currency: i.currency,
  amount_due: formatMicros(i.amountDue), due_at: i.dueAt.toISOString(),
});

/** A history entry of amount 0 (suspension, reinstatement) under `key`, in the caller's transaction. */
async function historyEntry(
  c: PoolClient, state: AccountState, nowMs: number, kind: 'suspension' | 'reinstatement', key: string, reason: string,
): Promise<LedgerEntry> {
  const [entry] = await recordEntries(c, [{
    account_id: state.id, kind, amount: 0n, currency: state.currency, grant_id: null, overdraft_paid: 0n,
    balance_after: balanceAt(state, nowMs), reason, idempotency_key: key,
    request_hash: createHash('sha256').update(JSON.stringify([kind, key])).digest('hex'),
  }]);
  return entry!;
}

export type Settlement = { outcome: 'applied' | 'settled' | 'unknown' | 'duplicate'; invoice?: InvoiceRecord; reinstated?: boolean };

/**
 * What names the invoice, and the Stripe event that says so when a webhook does: the event is
 * recorded in the change's own transaction, so a concurrent delivery of the same event waits for
 * it and answers duplicate.
 */
export interface InvoiceRef {
  stripeInvoiceId?: string;
  invoiceId?: string;
  event?: { id: string; type: string };
  /** Stripe's attempt_count of a failed charge (1: the invoicer's own pay call): one notice per attempt. */
  attempt?: number;
}

const seenBefore = async (c: PoolClient, ref: InvoiceRef) => ref.event !== undefined && !(await recordStripeEvent(c, ref.event.id, ref.event.type));

/**
 * Stripe says the invoice is paid (invoice.paid, or the answer to our pay call): the invoice is
 * paid with a confirmation notification, and an account it had suspended is reinstated at once
 * (history entry, account.reinstated) unless another invoice past its grace is still owed.
 * Applied once whichever of the webhook and the pay answer comes first.
 */
export async function markInvoicePaid(
  order: WriteOrder, ref: InvoiceRef, gate?: GateConfigCache,
): Promise<Settlement> {
  const done = await order.run<Settlement>({
    name: 'invoice-paid',
    async transaction(c) {
      if (await seenBefore(c, ref)) return { commit: false, value: { outcome: 'duplicate' } };
      const inv = await lockInvoice(c, ref);
      if (!inv) return { commit: false, value: { outcome: 'unknown' } };
      if (inv.state === 'paid') return { commit: false, value: { outcome: 'settled', invoice: inv } };
      const nowMs = order.now();
      await c.query(`UPDATE invoices SET state = 'paid', paid_at = to_timestamp($2::double precision / 1000) WHERE id = $1`, [inv.id, nowMs]);
      const paid = { ...inv, state: 'paid' as const, paidAt: new Date(nowMs) };
      await recordNotifications(c, [{
        accountId: inv.accountId, cause: `invoice:${inv.id}:paid`,
        payload: { type: 'invoice.paid', timestamp: new Date(nowMs).toISOString(), data: chargeData(paid) },
      }], nowMs);
      const account = await c.query<{ suspended_at: Date | null }>('SELECT suspended_at FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [inv.accountId]);
      const stillOwed = await c.query(
        `SELECT 1 FROM invoices WHERE account_id = $1 AND id <> $2 AND state IN ('open', 'payment_failed') AND due_at <= to_timestamp($3::double precision / 1000)`,
        [inv.accountId, inv.id, nowMs]);
      if (account.rows[0]?.suspended_at == null || stillOwed.rowCount !== 0) {
        return { commit: true, value: { outcome: 'applied', invoice: paid, reinstated: false } };
      }
      const state = (await loadAccountStates(c, [inv.accountId], { forUpdate: true, nowMs })).get(inv.accountId)!;
      await c.query('UPDATE accounts SET suspended_at = NULL WHERE id = $1', [inv.accountId]);
      const entry = await historyEntry(c, state, nowMs, 'reinstatement', `reinstatement:${inv.id}`,
        `API access restored: invoice ${invoiceNumberText(inv) ?? inv.id} for ${inv.month} paid`);
      await recordNotifications(c, [{
        accountId: inv.accountId, cause: `invoice:${inv.id}:reinstated`,
        payload: { type: 'account.reinstated', timestamp: entry.created_at, data: suspensionData(inv) },
      }], nowMs);
      return {
        commit: true, value: { outcome: 'applied', invoice: paid, reinstated: true },
        publish: async (send) => {
          await publishEntries(send, order.topics.entries, [entry]);
          await markEntriesPublished(order.pool, [entry]);
        },
        states: [{ ...state, ledgerSeq: BigInt(entry.seq) }],
      };
    },
  });
  if (done.reinstated) await gate?.forgetConfig(done.invoice!.accountId);
  return done;
}

const suspensionData = (i: InvoiceRecord) => ({
  account_id: i.accountId, invoice_id: i.id, month: i.month, currency: i.currency, amount_due: formatMicros(i.amountDue),
});

async function lockInvoice(c: PoolClient, ref: { stripeInvoiceId?: string; invoiceId?: string }): Promise<InvoiceRecord | undefined> {
  if (ref.stripeInvoiceId !== undefined) return invoiceOfStripe(c, ref.stripeInvoiceId);
  const inv = ref.invoiceId === undefined ? undefined : await getInvoice(c, ref.invoiceId);
  return inv && (await invoiceOfStripeOrId(c, inv.id));
}

async function invoiceOfStripeOrId(c: PoolClient, id: string): Promise<InvoiceRecord | undefined> {
  await c.query('SELECT 1 FROM invoices WHERE id = $1 FOR UPDATE', [id]);
  return getInvoice(c, id);
}

/**
 * Stripe could not charge the invoice (invoice.payment_failed, or a declined pay call): the
 * invoice is payment_failed and the account is told what to do (pay before due_at), once per
 * charge attempt (seed 001: an alert if a transaction fails): the pay call's answer and Stripe's
 * event of the same attempt give one notice, a later attempt that fails (a retry, the customer's
 * card again) another.
 */
export async function markPaymentFailed(order: WriteOrder, ref: InvoiceRef): Promise<Settlement> {
  return order.run<Settlement>({
    name: 'invoice-payment-failed',
    async transaction(c) {
      if (await seenBefore(c, ref)) return { commit: false, value: { outcome: 'duplicate' } };
      const inv = await lockInvoice(c, ref);
      if (!inv) return { commit: false, value: { outcome: 'unknown' } };
      if (inv.state !== 'open' && inv.state !== 'payment_failed') return { commit: false, value: { outcome: 'settled', invoice: inv } };
      const nowMs = order.now();
      await c.query(`UPDATE invoices SET state = 'payment_failed', failed_at = to_timestamp($2::double precision / 1000) WHERE id = $1`, [inv.id, nowMs]);
      await recordNotifications(c, [{
        accountId: inv.accountId, cause: `invoice:${inv.id}:payment_failed:${ref.attempt ?? 1}`,
        payload: { type: 'invoice.payment_failed', timestamp: new Date(nowMs).toISOString(), data: chargeData(inv) },
      }], nowMs);
      return { commit: true, value: { outcome: 'applied', invoice: { ...inv, state: 'payment_failed', failedAt: new Date(nowMs) } } };
    },
  });
}

/**
 * The dunning step: every account with an invoice still owed 7 days after its date is suspended
 * (accounts.suspended_at; the gate refuses ACCOUNT_SUSPENDED), with a history entry and an
 * account.suspended notification, once per invoice. Returns the accounts suspended now.
 */
export async function suspendOverdue(order: WriteOrder, opts: { now?: number; gate?: GateConfigCache } = {}): Promise<string[]> {
  const nowMs = opts.now ?? order.now();
  const due = await order.pool.query<{ id: string }>(
    `SELECT DISTINCT ON (i.account_id) i.id FROM invoices i JOIN accounts a ON a.id = i.account_id
      WHERE i.state IN ('open', 'payment_failed') AND i.due_at <= to_timestamp($1::double precision / 1000) AND a.suspended_at IS NULL
      ORDER BY i.account_id, i.due_at`, [nowMs]);
  const suspended: string[] = [];
  for (const { id } of due.rows) {
    const accountId = await order.run<string | undefined>({
      name: 'suspend-overdue',
      async transaction(c) {
        const inv = await invoiceOfStripeOrId(c, id);
        const state = inv && (await loadAccountStates(c, [inv.accountId], { forUpdate: true, nowMs })).get(inv.accountId);
        const account = inv && await c.query<{ suspended_at: Date | null }>('SELECT suspended_at FROM accounts WHERE id = $1', [inv.accountId]);
        if (!inv || !state || (inv.state !== 'open' && inv.state !== 'payment_failed') || account?.rows[0]?.suspended_at != null) {
          return { commit: false, value: undefined };
        }
        await c.query('UPDATE accounts SET suspended_at = to_timestamp($2::double precision / 1000) WHERE id = $1', [inv.accountId, nowMs]);
        const entry = await historyEntry(c, state, nowMs, 'suspension', `suspension:${inv.id}`,
          `API access suspended: invoice ${invoiceNumberText(inv) ?? inv.id} of ${formatMicros(inv.amountDue)} ${inv.currency} for ${inv.month} unpaid 7 days after its date`);
        await recordNotifications(c, [{
          accountId: inv.accountId, cause: `invoice:${inv.id}:suspended`,
          payload: { type: 'account.suspended', timestamp: entry.created_at, data: suspensionData(inv) },
        }], nowMs);
        return {
          commit: true, value: inv.accountId,
          publish: async (send) => {
            await publishEntries(send, order.topics.entries, [entry]);
            await markEntriesPublished(order.pool, [entry]);
          },
          states: [{ ...state, ledgerSeq: BigInt(entry.seq) }],
        };
      },
    });
    if (accountId !== undefined) {
      suspended.push(accountId);
      await opts.gate?.forgetConfig(accountId);
    }
  }
  return suspended;
}
