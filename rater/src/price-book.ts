import type { Pool } from '@meterstream/platform/postgres';
import { listen, type PgListener } from '@meterstream/platform/pg-listen';
import type { Logger } from '@meterstream/platform/logger';
import type { Currency, Unit } from '@meterstream/schemas';
import type { PriceEntry, PriceLookup } from '@meterstream/ledger/core/price';
import { systemClock } from '@meterstream/platform/clock';

export interface PriceBookOptions {
  now?: () => number;
  /** Waits between attempts to LISTEN again after the connection was lost: doubling, capped. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

/** An unknown product forces a reload at most this often. */
const UNKNOWN_RELOAD_MS = 1000;

/**
 * The price book cached in memory. Postgres notifies `prices_changed` on every write to prices
 * (trigger in the migration), and the book reloads; an unknown product also forces a reload
 * (at most once per second) before the event is sent to the dead-letter topic.
 */
export class PriceBook {
  private prices = new Map<string, PriceEntry>();
  private listener: PgListener | undefined;
  /** When the query of the last completed load started: it saw every price committed before. */
  private lastLoad = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | undefined;
  private loadAgain = false;
  private readonly now: () => number;

  constructor(private readonly pool: Pool, private readonly log: Logger, private readonly opts: PriceBookOptions = {}) {
    this.now = opts.now ?? systemClock.now;
  }

  /** The server process of the LISTEN connection, while it is up. */
  get listenerPid(): number | undefined {
    return this.listener?.backendPid;
  }

  async start(): Promise<void> {
    const reloadLogged = () => void this.reload().catch((e: unknown) => this.log.error({ err: e }, 'price book reload failed'));
    this.listener = listen({
      connectionString: this.pool.options.connectionString!,
      channel: 'prices_changed',
      applicationName: this.pool.options.application_name,
      log: this.log,
      initialDelayMs: this.opts.reconnectInitialMs,
      maxDelayMs: this.opts.reconnectMaxMs,
      onNotification: reloadLogged,
      // Notifications sent while disconnected are lost: every (re)connection reloads the book.
      onListening: reloadLogged,
    });
    await this.listener.firstAttempt;
    try {
      await this.reload();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    await listener?.close();
  }

  /**
   * Loads the whole book. Single flight: a call while a load runs gets one more load after it
   * (whose query then sees whatever made the caller ask) and resolves when that one is done.
   */
  reload(): Promise<void> {
    if (this.loading) {
      this.loadAgain = true;
      return this.loading;
    }
    this.loading = this.loadUntilCurrent().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /**
   * Called before a batch is priced, so that a price set a moment ago is honoured: waits for the
   * load in flight (a NOTIFY may have started it for that very price), then reloads once more if
   * a product is still unknown and the last load's query started over a second ago.
   */
  async ensureKnown(keys: Iterable<[string, Currency]>): Promise<void> {
    // A failed load was logged where it ran; the reload below retries it if it matters.
    await this.loading?.catch(() => undefined);
    for (const [product, currency] of keys) {
      if (this.lookup(product, currency)) continue;
      if (this.now() - this.lastLoad > UNKNOWN_RELOAD_MS) await this.reload();
      return;
    }
  }

  readonly lookup: PriceLookup = (product, currency) => this.prices.get(`${product}\u0000${currency}`);

  private async loadUntilCurrent(): Promise<void> {
    do {
      this.loadAgain = false;
      await this.load();
    } while (this.loadAgain);
  }

  private async load(): Promise<void> {
    const startedAt = this.now();
    const rows = await this.pool.query<{ product: string; currency: Currency; unit: Unit; unit_price: bigint; per: bigint }>(
      'SELECT product, currency, unit, unit_price, per FROM prices',
    );
    const next = new Map<string, PriceEntry>();
    // The prices table holds list prices only; other pricing models are not stored yet.
    for (const r of rows.rows) next.set(`${r.product}\u0000${r.currency}`, { model: 'per_unit', unit: r.unit, unitPrice: r.unit_price, per: r.per });
    this.prices = next;
    this.lastLoad = startedAt;
    this.log.debug({ prices: next.size }, 'price book loaded');
  }
}
