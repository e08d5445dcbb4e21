import { z } from 'zod';
import { DecimalError, formatMicros, MAX_MONEY_MICROS, MAX_QUANTITY_MICROS, toMicros } from '../money.js';

const PLAIN_DECIMAL = /^\d{1,15}(\.\d{1,6})?$/;

/**
 * The decimal text of a non-negative amount the ledger reports (a grant, a priced event, a sum):
 * at most 6 places. What callers may set is the narrower MoneyInput.
 */
export const MoneyString = z
  .string()
  .regex(PLAIN_DECIMAL, 'must be a decimal string with at most 6 decimal places, e.g. "10.50"')
  .describe('exact decimal in the account currency, at most 6 places');

const MAX_MONEY_TEXT = formatMicros(MAX_MONEY_MICROS);
const MAX_QUANTITY_TEXT = formatMicros(MAX_QUANTITY_MICROS);

/**
 * Money a caller sets (a grant amount, a unit price): at most MAX_MONEY_MICROS, so that balances
 * and sums of such amounts stay inside Postgres' int8.
 */
export const MoneyInput = MoneyString.refine(
  (v) => !PLAIN_DECIMAL.test(v) || toMicros(v) <= MAX_MONEY_MICROS,
  `must be at most ${MAX_MONEY_TEXT}`,
).describe(`exact decimal in the account currency, at most 6 places, at most ${MAX_MONEY_TEXT}`);

/** Signed money, as shown in balances (a prepaid account can go negative). */
export const SignedMoneyString = z.string().regex(/^-?\d{1,15}\.\d{6}$/);

/**
 * A non-negative quantity of at most 6 places and at most MAX_QUANTITY_MICROS, as a number or a
 * string; exponent notation ("5e-5", as some JSON writers emit) counts only if it is exact.
 */
export const Quantity = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    const micros = toMicros(typeof v === 'string' ? expandExponent(v) : v);
    if (micros < 0n) {
      ctx.addIssue({ code: 'custom', message: 'quantity must not be negative' });
      return z.NEVER;
    }
    if (micros > MAX_QUANTITY_MICROS) {
      ctx.addIssue({ code: 'custom', message: `quantity must be at most ${MAX_QUANTITY_TEXT}` });
      return z.NEVER;
    }
    return micros;
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof DecimalError ? `quantity ${e.message}` : 'bad quantity' });
    return z.NEVER;
  }
});

const EXPONENT = /^(-?)(\d+)(?:\.(\d+))?[eE]([+-]?\d+)$/;
// Far beyond any quantity's 12 integer digits and 6 places, small enough never to build big strings.
const MAX_SHIFT = 40;

/** "1.5e3" -> "1500", "5e-5" -> "0.00005": exact decimal text; anything else comes back as is. */
export function expandExponent(text: string): string {
  const m = EXPONENT.exec(text.trim());
  if (!m) return text;
  const [, sign, whole, frac = '', exp] = m as unknown as [string, string, string, string | undefined, string];
  const shift = Number(exp);
  if (Math.abs(shift) > MAX_SHIFT) return text; // left for toMicros to refuse
  const digits = whole + frac;
  const point = whole.length + shift; // position of the decimal point within `digits`
  const padded = point <= 0 ? '0'.repeat(1 - point) + digits : digits.padEnd(point, '0');
  const at = point <= 0 ? 1 : point;
  const intPart = padded.slice(0, at).replace(/^0+(?=\d)/, '');
  const fracPart = padded.slice(at).replace(/0+$/, '');
  return `${sign}${intPart}${fracPart === '' ? '' : `.${fracPart}`}`;
}

export const Currency = z.enum(['USD', 'EUR']);
export type Currency = z.infer<typeof Currency>;

/**
 * The longest id (account, event, product): the same limit in this contract, in the HTTP
 * router's path parameters and in the database's CHECK constraints.
 */
export const ID_MAX_LENGTH = 128;
export const Id = z
  .string()
  .min(1)
  .max(ID_MAX_LENGTH)
  .regex(/^[A-Za-z0-9._:-]+$/, 'only letters, digits and . _ : -')
  .describe(`1 to ${ID_MAX_LENGTH} letters, digits and . _ : -`);
export const IsoTimestamp = z.iso.datetime({ offset: true });

// Node 20 has String.prototype.isWellFormed; the project's TypeScript lib (ES2023) does not declare it.
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Text Postgres can store in text and jsonb: no NUL character, no lone UTF-16 surrogate. */
export function storableTextProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return 'contains the NUL character (\\u0000)';
  if (!isWellFormed(s)) return 'contains a lone UTF-16 surrogate';
  return undefined;
}

/** A string from a caller that ends up in Postgres (see storableTextProblem). */
export const StorableString = z.string().superRefine((s, ctx) => {
  const problem = storableTextProblem(s);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

// Names a key in a message: escaped (so NUL and lone surrogates show as \u0000, \ud800) and short.
const quoted = (key: string) => JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}...` : key);

export const PROPERTIES_MAX_KEYS = 32;
export const PROPERTY_KEY_MAX_LENGTH = 64;
export const PROPERTY_VALUE_MAX_LENGTH = 1024;
/** Keys and values together, in UTF-16 code units (characters, for most text). */
export const PROPERTIES_MAX_LENGTH = 4096;

/**
 * Free-form string labels of an event, kept with it in the ledger (jsonb) and in ClickHouse:
 * bounded so that one event stays small, and storable so that it never makes Postgres refuse a batch.
 */
export const Properties = z
  .record(z.string(), z.string())
  .superRefine((props, ctx) => {
    const keys = Object.keys(props);
    if (keys.length > PROPERTIES_MAX_KEYS) {
      ctx.addIssue({ code: 'custom', message: `at most ${PROPERTIES_MAX_KEYS} keys, got ${keys.length}` });
      return;
    }
    let total = 0;
    for (const key of keys) {
      const value = props[key]!;
      total += key.length + value.length;
      const keyProblem = key.length > PROPERTY_KEY_MAX_LENGTH
        ? `is longer than ${PROPERTY_KEY_MAX_LENGTH} characters`
        : storableTextProblem(key);
      if (keyProblem) ctx.addIssue({ code: 'custom', message: `key ${quoted(key)} ${keyProblem}` });
      const valueProblem = value.length > PROPERTY_VALUE_MAX_LENGTH
        ? `is longer than ${PROPERTY_VALUE_MAX_LENGTH} characters`
        : storableTextProblem(value);
      if (valueProblem) ctx.addIssue({ code: 'custom', message: `the value of ${quoted(key)} ${valueProblem}` });
    }
    if (total > PROPERTIES_MAX_LENGTH) {
      ctx.addIssue({ code: 'custom', message: `keys and values hold ${total} characters, at most ${PROPERTIES_MAX_LENGTH}` });
    }
  })
  .describe(
    `string labels: at most ${PROPERTIES_MAX_KEYS} keys of at most ${PROPERTY_KEY_MAX_LENGTH} characters, values of at most ` +
      `${PROPERTY_VALUE_MAX_LENGTH}, ${PROPERTIES_MAX_LENGTH} characters in all; no \\u0000 and no lone surrogate`,
  );
