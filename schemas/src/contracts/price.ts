import { z } from 'zod';
import { Currency, Id, MoneyString } from './common.js';

export const Unit = z.enum(['second', 'minute', 'word', 'image', 'token', 'request']);
export type Unit = z.infer<typeof Unit>;

/**
 * "0.60" per 60 seconds is billed per second; "0.002" per 1000 tokens; "0.04" per 1 image.
 * The quantity of an event is counted in `unit`.
 */
export const PriceInput = z.object({
  unit: Unit,
  unit_price: MoneyString,
  per: z.number().int().positive().max(1_000_000_000).default(1),
  currency: Currency.default('USD'),
});
export type PriceInput = z.infer<typeof PriceInput>;

export const Price = PriceInput.extend({ product: Id, updated_at: z.string() });
export type Price = z.infer<typeof Price>;
