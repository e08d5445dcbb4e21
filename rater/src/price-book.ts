import type { Pool } from '@meterstream/schemas/postgres';
import type { Logger } from '@meterstream/schemas/logger';
import type { Currency, Unit } from '@meterstream/schemas';
import type pg from 'pg';

export interface PriceEntry {
  unit: Unit;
  unitPrice: bigint; // micro-units of the currency per `per` units
  per: bigint;
}

export type PriceLookup = (product: string, currency: Currency) => PriceEntry | undefined;

/**
 * The price book cached in memory. Postgres notifies `prices_changed` on every write to prices
 * (trigger in the migration), and the book reloads; an unknown product also forces a reload
 * (at most once per second) before the event is sent to the dead-letter topic.
 */
export class PriceBook {
  private prices = new Map<string, PriceEntry>();
  private listener: pg.PoolClient | undefined;
  private lastLoad = 0;

  constructor(private readonly pool: Pool, private readonly log: Logger) {}

  async start(): Promise<void> {
    this.listener = await this.pool.connect();
    this.listener.on('notification', () => {
      this.reload().catch((e: unknown) => this.log.error({ err: e }, 'price book reload failed'));
    });
    await this.listener.query('LISTEN prices_changed');
    await this.reload();
  }

  async stop(): Promise<void> {
    if (!this.listener) return;
    await this.listener.query('UNLISTEN prices_changed').catch(() => undefined);
    this.listener.release();
    this.listener = undefined;
  }

  async reload(): Promise<void> {
    this.lastLoad = Date.now();
    const rows = await this.pool.query<{ product: string; currency: Currency; unit: Unit; unit_price: bigint; per: bigint }>(
      'SELECT product, currency, unit, unit_price, per FROM prices',
    );
    const next = new Map<string, PriceEntry>();
    for (const r of rows.rows) next.set(`${r.product}\u0000${r.currency}`, { unit: r.unit, unitPrice: r.unit_price, per: r.per });
    this.prices = next;
    this.log.debug({ prices: next.size }, 'price book loaded');
  }

  /** Reloads when some product of a batch is unknown, so a price set a moment ago is honoured. */
  async ensureKnown(keys: Iterable<[string, Currency]>): Promise<void> {
    for (const [product, currency] of keys) {
      if (!this.lookup(product, currency) && Date.now() - this.lastLoad > 1000) return this.reload();
    }
  }

  readonly lookup: PriceLookup = (product, currency) => this.prices.get(`${product}\u0000${currency}`);
}
