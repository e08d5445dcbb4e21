import { randomBytes } from 'node:crypto';
import type { Logger } from '@meterstream/platform/logger';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import { listen, type PgListener } from '@meterstream/platform/pg-listen';
import type { Pool } from '@meterstream/platform/postgres';
import {
  findHoldByKey, insertHolds, loadGateAccount, openHolds, type HoldRecord, type NewHold,
} from '@meterstream/platform/stores/holds';
import { formatMicros, MAX_MONEY_MICROS, type Currency, type GateRefusal, type Hold } from '@meterstream/schemas';
import { loadAccountStates, monthOf } from '../account-state.js';
import type { BalanceCache } from '../balance-cache.js';
import type { GateCache } from '../gate-cache.js';
import { price, type PriceEntry } from '../core/price.js';

export { AccountNotFoundError };

export class GateUnknownProductError extends Error {
  override readonly name = 'GateUnknownProductError';
}
export class GatePriceOutOfRangeError extends Error {
  override readonly name = 'GatePriceOutOfRangeError';
}
/** The same Idempotency-Key was used with another account, product or quantity. */
export class GateKeyReusedError extends Error {
  override readonly name = 'GateKeyReusedError';
}
/** Redis kept answering that its copy was stale or missing: the gate cannot decide (fail closed). */
export class GateUndecidedError extends Error {
  override readonly name = 'GateUndecidedError';
}

export interface AuthorizeRequest {
  accountId: string;
  product: string;
  /** Micro-units of the product's unit. */
  maxQuantity: bigint;
  idempotencyKey: string;
}

export type Authorization =
  | { kind: 'held'; hold: Hold; replayed: boolean }
  | { kind: 'refused'; code: GateRefusal; replayed: boolean };

/** Random bytes drawn a block at a time: one call per 512 holds instead of one per hold. */
const ID_BYTES = 12;
let idPool = Buffer.alloc(0);
let idAt = 0;
export const newHoldId = (): string => {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 512);
    idAt = 0;
  }
  idAt += ID_BYTES;
  return `hold_${idPool.toString('hex', idAt - ID_BYTES, idAt)}`;
};

/**
 * How long a price is used before it is read again while the gate does not hear prices_changed
 * (its LISTEN connection down): a new price then applies to holds within this. While it listens,
 * a price is kept until a write to prices notifies.
 */
const PRICE_TTL_MS = 1000;
/** Accounts whose currency is remembered (it never changes); the map is cleared past this. */
const CURRENCIES_MAX = 100_000;
/** Hold rows written per statement, and statements in flight (the size of GateDeps.writer). */
const WRITE_BATCH = 500;
export const GATE_WRITES_IN_FLIGHT = 2;

interface Pending {
  hold: NewHold;
  done: (inserted: boolean) => void;
  failed: (e: unknown) => void;
}

export interface GateDeps {
  pool: Pool;
  /**
   * Where the holds are written (group commit): connections of their own, so that the gate's
   * writes never queue behind other routes' queries for the shared pool. Default: pool.
   */
  writer?: Pool;
  /** Where the account's state is cached (its figures are what the gate decides on). */
  cache: BalanceCache;
  gate: GateCache;
  log: Pick<Logger, 'info' | 'warn'>;
  now: () => number;
}

/**
 * The spend gate's authorizations (POST /v1/authorize). Each one prices the call with the price
 * book, reserves its amount in Redis (gate-cache.ts: one Lua script that checks what the account
 * may spend and reserves atomically, the only point where concurrent authorizations meet), then
 * makes the hold durable in Postgres before it answers; concurrent authorizations share one
 * INSERT (group commit), so the database costs one round trip per group, not per call. Redis
 * first: a crash between the two leaves a reservation Postgres does not know, which only refuses
 * more than needed until the hold's expiry frees it; the other order would leave a hold Redis
 * does not count. A refusal is stored the same way (terminal for its key). A hold is not a ledger
 * movement (no money moves until the rater captures it), so it does not go through the write order.
 */
export class Gate {
  private readonly currencies = new Map<string, Currency>();
  private readonly prices = new Map<string, { entry: PriceEntry | undefined; at: number }>();
  /** Bumped whenever the prices are dropped: a load that started before must not store what it read. */
  private pricesGeneration = 0;
  private readonly pricesChanged: PgListener | undefined;
  private queue: Pending[] = [];
  private writing = 0;
  /** Loads in flight by what they load: a burst on a cold account costs one query, not one per call. */
  private readonly loading = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: GateDeps) {
    // The rater's price book listens the same way (a trigger on prices notifies every write).
    const { connectionString, application_name: applicationName } = deps.pool.options;
    const forget = () => {
      this.prices.clear();
      this.pricesGeneration++;
    };
    if (connectionString) {
      this.pricesChanged = listen({
        // pg-listen logs with info and warn only.
        connectionString, channel: 'prices_changed', applicationName, log: deps.log as Logger,
        onNotification: forget,
        // Notifications sent while it was down are lost: whatever was read before may be stale.
        onListening: forget,
      });
    }
  }

  /** Stops listening for price changes. */
  async close(): Promise<void> {
    await this.pricesChanged?.close();
  }

  async authorize(req: AuthorizeRequest): Promise<Authorization> {
    const { gate } = this.deps;
    const currency = this.currencies.get(req.accountId) ?? await this.once(`currency\u0000${req.accountId}`, () => this.currencyOf(req.accountId));
    const entry = await this.priceOf(req.product, currency);
    if (!entry) throw new GateUnknownProductError(`no ${currency} price for product ${req.product}`);
    const amount = price(req.maxQuantity, entry);
    if (amount > MAX_MONEY_MICROS) throw new GatePriceOutOfRangeError(`max_quantity costs ${formatMicros(amount)} ${currency}, more than one call may cost (${formatMicros(MAX_MONEY_MICROS)})`);
    const id = newHoldId();
    for (let attempt = 0; attempt < 4; attempt++) {
      const nowMs = this.deps.now();
      const month = monthOf(nowMs);
      const r = await gate.reserve(req.accountId, id, amount, nowMs, month);
      if (r.kind === 'miss' && r.what !== 'config') {
        await this.once(`rebuild\u0000${req.accountId}`, () => this.rebuild(req.accountId, nowMs));
        continue;
      }
      if (r.kind === 'miss' || r.kind === 'stale') {
        await this.once(`config\u0000${req.accountId}`, () => this.loadConfig(req.accountId, month));
        continue;
      }
      // The config is about to expire: read it again now, without holding this call up, so
      // that no call waits for it while the account is busy.
      if (r.refresh) {
        void this.once(`config\u0000${req.accountId}`, () => this.loadConfig(req.accountId, month, { refresh: true }))
          .catch((e: unknown) => this.deps.log.warn({ err: (e as Error).message, accountId: req.accountId }, 'gate config refresh failed; the next call reads it'));
      }
      const base = {
        id, accountId: req.accountId, idempotencyKey: req.idempotencyKey, product: req.product, maxQuantity: req.maxQuantity,
        amount, currency, createdAt: new Date(nowMs),
      };
      if (r.kind === 'refused') {
        const stored = await this.store({ ...base, status: 'refused', refusal: r.code, expiresAt: new Date(nowMs) });
        return stored ? { kind: 'refused', code: r.code, replayed: false } : this.replay(req);
      }
      let stored: boolean;
      try {
        stored = await this.store({ ...base, status: 'open', refusal: null, expiresAt: new Date(r.expiresMs) });
      } catch (e) {
        // Not durable: no hold. Should freeing it fail too, its expiry frees it.
        await gate.close(req.accountId, [id]).catch(() => undefined);
        throw e;
      }
      if (stored) {
        // A flush between the reservation and this commit: the rebuild read Postgres without the
        // hold, so it is put back (not awaited: the hold is durable; its expiry bounds a failure).
        gate.keepHeld(req.accountId, { id, amount, expiresMs: r.expiresMs }, r.epoch).then(
          (kept) => { if (kept) this.deps.log.warn({ accountId: req.accountId, holdId: id }, 'hold put back into the gate: Redis was rebuilt between its reservation and its commit'); },
          (e: unknown) => this.deps.log.warn({ err: (e as Error).message, accountId: req.accountId, holdId: id }, 'could not check the hold against a rebuilt gate; its expiry bounds it'),
        );
        return { kind: 'held', hold: toHold(base, r.expiresMs), replayed: false };
      }
      // The key was used before (a retry): its first answer stands, this reservation goes.
      await gate.close(req.accountId, [id]);
      return this.replay(req);
    }
    throw new GateUndecidedError('the gate could not bring its Redis copy up to date; retry');
  }

  /** The first answer given to this key, if the request is the same. */
  private async replay(req: AuthorizeRequest): Promise<Authorization> {
    const first = await findHoldByKey(this.deps.pool, req.accountId, req.idempotencyKey);
    if (!first) throw new GateUndecidedError('the earlier request with this Idempotency-Key is still being decided; retry');
    if (first.product !== req.product || first.maxQuantity !== req.maxQuantity) {
      throw new GateKeyReusedError(`Idempotency-Key ${JSON.stringify(req.idempotencyKey)} was already used for another authorization on account ${req.accountId}`);
    }
    if (first.status === 'refused') return { kind: 'refused', code: first.refusal!, replayed: true };
    return { kind: 'held', hold: toHold(first, first.expiresAt.getTime()), replayed: true };
  }

  /** The account's state and open holds, from Postgres into Redis (after a flush, a restart, an eviction). */
  private async rebuild(accountId: string, nowMs: number): Promise<void> {
    const { pool, cache, gate } = this.deps;
    const [states, holds] = await Promise.all([
      loadAccountStates(pool, [accountId], { forUpdate: false, nowMs, excludeClosed: true }),
      openHolds(pool, accountId, new Date(nowMs)),
    ]);
    const state = states.get(accountId);
    if (!state) throw new AccountNotFoundError(accountId);
    await cache.write([state]);
    await gate.init(accountId, holds.map((h) => ({ id: h.id, amount: h.amount, expiresMs: h.expiresAt.getTime() })));
    this.deps.log.info({ accountId, holds: holds.length }, 'gate rebuilt from Postgres');
  }

  private async loadConfig(accountId: string, month: string, opts: { refresh?: boolean } = {}): Promise<void> {
    const a = await loadGateAccount(this.deps.pool, accountId, month);
    if (!a || a.closed) throw new AccountNotFoundError(accountId);
    await this.deps.gate.writeConfig(accountId, {
      suspended: a.suspended, hasPaymentMethod: a.hasPaymentMethod, monthlyLimit: a.monthlyLimit, allowedLimit: a.allowedLimit,
      monthSpend: a.monthSpend, month, spendSeq: a.ledgerSeq, holdTtlMs: a.holdTtlSeconds * 1000,
    }, opts);
  }

  /** Runs load once for every caller that asks for `key` while it runs. */
  private once<T>(key: string, load: () => Promise<T>): Promise<T> {
    let pending = this.loading.get(key) as Promise<T> | undefined;
    if (!pending) {
      pending = load().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async currencyOf(accountId: string): Promise<Currency> {
    const r = await this.deps.pool.query<{ currency: Currency }>('SELECT currency FROM accounts WHERE id = $1 AND closed_at IS NULL', [accountId]);
    const currency = r.rows[0]?.currency;
    if (!currency) throw new AccountNotFoundError(accountId);
    if (this.currencies.size >= CURRENCIES_MAX) this.currencies.clear();
    this.currencies.set(accountId, currency);
    return currency;
  }

  private async priceOf(product: string, currency: Currency): Promise<PriceEntry | undefined> {
    const key = `${product}\u0000${currency}`;
    const nowMs = this.deps.now();
    const cached = this.prices.get(key);
    if (cached && (this.pricesChanged?.backendPid !== undefined || nowMs - cached.at < PRICE_TTL_MS)) return cached.entry;
    return this.once(`price\u0000${key}`, () => this.loadPrice(product, currency, key, nowMs));
  }

  private async loadPrice(product: string, currency: Currency, key: string, nowMs: number): Promise<PriceEntry | undefined> {
    const generation = this.pricesGeneration;
    const r = await this.deps.pool.query<Pick<PriceEntry, 'unit' | 'unitPrice' | 'per'> & { unit_price: bigint }>(
      'SELECT unit, unit_price, per FROM prices WHERE product = $1 AND currency = $2', [product, currency]);
    const row = r.rows[0];
    // The prices table holds list prices only (as the rater's price book reads them).
    const entry: PriceEntry | undefined = row && { model: 'per_unit', unit: row.unit, unitPrice: row.unit_price, per: row.per };
    if (generation === this.pricesGeneration) this.prices.set(key, { entry, at: nowMs });
    return entry;
  }

  /** Inserts the row with whatever else is waiting (group commit); false: its key was taken. */
  private store(hold: NewHold): Promise<boolean> {
    return new Promise((done, failed) => {
      this.queue.push({ hold, done, failed });
      if (this.writing < GATE_WRITES_IN_FLIGHT) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.writing++;
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, WRITE_BATCH);
        try {
          const inserted = await insertHolds(this.deps.writer ?? this.deps.pool, group.map((p) => p.hold));
          for (const p of group) p.done(inserted.has(p.hold.id));
        } catch (e) {
          for (const p of group) p.failed(e);
        }
      }
    } finally {
      this.writing--;
    }
  }
}

const toHold = (h: Pick<HoldRecord, 'id' | 'accountId' | 'amount' | 'currency'>, expiresMs: number): Hold => ({
  hold_id: h.id, account_id: h.accountId, amount: formatMicros(h.amount), currency: h.currency, expires_at: new Date(expiresMs).toISOString(),
});
