import { z } from 'zod';
import { DecimalError, toMicros } from '../money.js';

/** A decimal string of money ("0.012500"), non-negative, at most 6 places. */
export const MoneyString = z
  .string()
  .regex(/^\d{1,15}(\.\d{1,6})?$/, 'must be a decimal string with at most 6 decimal places, e.g. "10.50"')
  .describe('exact decimal in the account currency, at most 6 places');

/** Signed money, as shown in balances (a prepaid account can go negative). */
export const SignedMoneyString = z.string().regex(/^-?\d{1,15}\.\d{6}$/);

/** A non-negative decimal quantity with at most 6 places, as number or string. */
export const Quantity = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    const micros = toMicros(v);
    if (micros < 0n) {
      ctx.addIssue({ code: 'custom', message: 'quantity must not be negative' });
      return z.NEVER;
    }
    return micros;
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof DecimalError ? `quantity ${e.message}` : 'bad quantity' });
    return z.NEVER;
  }
});

export const Currency = z.enum(['USD', 'EUR']);
export type Currency = z.infer<typeof Currency>;

export const Id = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'only letters, digits and . _ : -');
export const IsoTimestamp = z.iso.datetime({ offset: true });
