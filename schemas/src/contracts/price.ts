import { z } from 'zod';
import { Currency, Id, ID_MAX_LENGTH, MoneyInput, MoneyString, StorableString } from './common.js';

export const Unit = z.enum(['second', 'minute', 'word', 'image', 'token', 'request']);
export type Unit = z.infer<typeof Unit>;

/** The largest `per`: a unit price may be quoted for up to a billion units. */
export const PER_MAX = 1_000_000_000;

/**
 * "0.60" per 60 seconds is billed per second; "0.002" per 1000 tokens; "0.04" per 1 image.
 * The quantity of an event is counted in `unit`.
 */
export const PriceInput = z.object({
  unit: Unit,
  unit_price: MoneyInput,
  per: z.number().int().positive().max(PER_MAX).default(1).describe(`how many units unit_price buys: a whole number from 1 to ${PER_MAX}`),
  currency: Currency.default('USD'),
});
export type PriceInput = z.infer<typeof PriceInput>;

// unit_price as stored: prices set before MoneyInput's bound must still be listed.
export const Price = PriceInput.extend({ product: Id, unit_price: MoneyString, updated_at: z.string() });
export type Price = z.infer<typeof Price>;

export const PriceParams = z.object({ product: Id });

export const PriceQuery = z.object({
  q: StorableString.max(ID_MAX_LENGTH).optional().describe('case-insensitive substring of the product name'),
  currency: Currency.optional(),
});

export const PriceList = z.object({ prices: z.array(Price) });
export type PriceList = z.infer<typeof PriceList>;
