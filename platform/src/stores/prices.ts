import { z } from 'zod';
import { Currency, toMicros, Unit, type PriceInput } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

/** A price as the rater applies it: unitPrice micro-units buy `per` units of `unit`. */
export interface PriceRecord {
  product: string;
  currency: Currency;
  unit: Unit;
  unitPrice: bigint;
  per: bigint;
  updatedAt: Date;
}

export type PriceSetting = Omit<PriceRecord, 'product' | 'updatedAt'>;

/** A price as the API takes it (decimal text) in the store's terms. */
export const priceSetting = (p: PriceInput): PriceSetting => ({
  currency: p.currency, unit: p.unit, unitPrice: toMicros(p.unit_price), per: BigInt(p.per),
});

/** A row of prices as pg returns it (int8 as bigint), parsed into the domain type. */
export const PriceRow = z
  .object({ product: z.string(), currency: Currency, unit: Unit, unit_price: z.bigint(), per: z.bigint(), updated_at: z.date() })
  .transform((r): PriceRecord => ({
    product: r.product, currency: r.currency, unit: r.unit, unitPrice: r.unit_price, per: r.per, updatedAt: r.updated_at,
  }));

const COLUMNS = 'product, currency, unit, unit_price, per, updated_at';

/** Sets the product's price in one currency; every rater reloads its price book (prices_changed). */
export async function upsertPrice(db: Db, product: string, p: PriceSetting): Promise<PriceRecord> {
  const [price] = await queryRows(db, 'prices', PriceRow,
    `INSERT INTO prices (product, currency, unit, unit_price, per) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (product, currency) DO UPDATE
       SET unit = EXCLUDED.unit, unit_price = EXCLUDED.unit_price, per = EXCLUDED.per, updated_at = now()
     RETURNING ${COLUMNS}`,
    [product, p.currency, p.unit, p.unitPrice, p.per]);
  return price!;
}

/** LIKE treats % and _ as wildcards; a search for "gpt_4" means those characters literally. */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Prices by product and currency; `q` is a case-insensitive substring of the product name. */
export async function searchPrices(db: Db, filter: { q?: string | undefined; currency?: Currency | undefined } = {}): Promise<PriceRecord[]> {
  return queryRows(db, 'prices', PriceRow,
    `SELECT ${COLUMNS} FROM prices
      WHERE ($1::text IS NULL OR product ILIKE '%' || $1 || '%')
        AND ($2::text IS NULL OR currency = $2)
      ORDER BY product, currency`,
    [filter.q === undefined ? null : likeLiteral(filter.q), filter.currency ?? null]);
}
