// Money and quantities travel as exact decimal strings and live inside as bigint micro-units.
// Nothing here ever touches a float: JSON numbers are re-read from their shortest decimal text.

export const MICROS = 1_000_000n;

// Every amount Postgres (int8), Redis and ClickHouse (Int64) hold must fit in a signed 64-bit
// integer, sums included. Single values are therefore capped far below 2^63 - 1 (9.22e18):
/** Largest quantity of one event: 999,999,999,999.999999 units (10^18 - 1 micro-units). */
export const MAX_QUANTITY_MICROS = 10n ** 18n - 1n;
/**
 * Largest single money amount (a unit price, a grant, one event's price, a top-up):
 * 999,999,999.999999 in the account's currency (10^15 - 1 micro-units), so that at least
 * 9,000 such amounts add up inside int8 (balances, monthly sums).
 */
export const MAX_MONEY_MICROS = 10n ** 15n - 1n;
/** Signed 64-bit bounds of every stored amount. */
export const INT64_MAX = 2n ** 63n - 1n;
export const INT64_MIN = -(2n ** 63n);
const DECIMAL = /^(-)?(\d{1,15})(?:\.(\d{1,6}))?$/;

export class DecimalError extends Error {
  override readonly name = 'DecimalError';
}

/** "12.5" -> 12_500_000n. Throws DecimalError on anything but a plain decimal with <= 6 places. */
export function toMicros(value: string | number): bigint {
  const text = typeof value === 'number' ? numberText(value) : value.trim();
  const m = DECIMAL.exec(text);
  if (!m) throw new DecimalError(`"${clip(text)}" is not a decimal with at most 6 places and 15 digits before the point`);
  const whole = BigInt(m[2] ?? '0');
  const frac = BigInt((m[3] ?? '').padEnd(6, '0'));
  const micros = whole * MICROS + frac;
  return m[1] ? -micros : micros;
}

// Messages quote what was sent, but a megabyte of it does not help anyone.
const clip = (text: string) => (text.length > 40 ? `${text.slice(0, 40)}...` : text);

function numberText(n: number): string {
  if (!Number.isFinite(n)) throw new DecimalError(`${n} is not a finite number`);
  return String(n); // shortest round-trip text: 0.1 -> "0.1"; 1e-7 -> "1e-7" which the regex rejects
}

/** 12_500_000n -> "12.500000" (string slicing: no bigint division on the hot path) */
export function formatMicros(micros: bigint): string {
  const neg = micros < 0n;
  const digits = (neg ? -micros : micros).toString().padStart(7, '0');
  return `${neg ? '-' : ''}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}

/** Integer division rounding half away from zero (half up for the non-negative amounts we price). */
export function divRoundHalfUp(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError('denominator must be positive');
  const neg = numerator < 0n;
  const abs = neg ? -numerator : numerator;
  const q = (abs * 2n + denominator) / (denominator * 2n);
  return neg ? -q : q;
}

/**
 * cost = quantity x unit_price / per, rounded half up to the micro-unit, once per event.
 * quantityMicros and unitPriceMicros are micro-units; per is a whole number of units.
 */
export function priceMicros(quantityMicros: bigint, unitPriceMicros: bigint, per: bigint): bigint {
  return divRoundHalfUp(quantityMicros * unitPriceMicros, per * MICROS);
}
