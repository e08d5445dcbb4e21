import { priceMicros, type Currency, type Unit } from '@meterstream/schemas';

/** A list price: `unitPrice` micro-units of the currency per `per` units. */
interface ListPrice {
  unit: Unit;
  unitPrice: bigint;
  per: bigint;
}

/** Exactly the quantity used, at the list price: a per-minute price on seconds bills each second (seed 001). */
export interface PerUnitPrice extends ListPrice {
  model: 'per_unit';
}

/**
 * The quantity rounded up to whole billing increments before it is priced: "per started second"
 * or "per started minute" on a per-minute list price. `incrementMicros` (> 0) is in micro-units of `unit`.
 */
export interface PerIncrementPrice extends ListPrice {
  model: 'per_increment';
  incrementMicros: bigint;
}

/** How a product is priced; `model` tells which. Today's price rows are all per_unit. */
export type PriceEntry = PerUnitPrice | PerIncrementPrice;

export type PriceLookup = (product: string, currency: Currency) => PriceEntry | undefined;

/**
 * What `quantityMicros` of a product costs, in micro-units of the currency: rounded half up to
 * the micro-unit once per event, never per unit.
 */
export function price(quantityMicros: bigint, entry: PriceEntry): bigint {
  switch (entry.model) {
    case 'per_unit':
      return priceMicros(quantityMicros, entry.unitPrice, entry.per);
    case 'per_increment':
      return priceMicros(roundUpTo(quantityMicros, entry.incrementMicros), entry.unitPrice, entry.per);
  }
}

/** The smallest multiple of `step` that is >= `value` (value >= 0, step > 0). */
function roundUpTo(value: bigint, step: bigint): bigint {
  const rest = value % step;
  return rest === 0n ? value : value - rest + step;
}
