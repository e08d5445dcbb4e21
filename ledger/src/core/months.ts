/**
 * Calendar months in UTC, as 'YYYY-MM': the periods allowances are granted for. Pure.
 *
 * "Rolls over for R months": the allowance of month M can be used during M and the R months after
 * it, and expires at the start of month M+1+R, 00:00 UTC. With R = 2 the January allowance is
 * usable in January, February and March and expires on April 1st 00:00 UTC.
 */

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

export class InvalidMonthError extends Error {
  override readonly name = 'InvalidMonthError';
}

function parts(month: string): { year: number; index: number } {
  const m = MONTH.exec(month);
  if (!m) throw new InvalidMonthError(`not a month (YYYY-MM): ${JSON.stringify(month)}`);
  return { year: Number(m[1]), index: Number(m[2]) - 1 };
}

/** The UTC month an instant falls in. */
export const monthAt = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/** The month `n` months after `month` (n may be negative). */
export function addMonths(month: string, n: number): string {
  const { year, index } = parts(month);
  return monthAt(Date.UTC(year, index + n, 1));
}

/** 00:00 UTC on the first day of the month, epoch ms. */
export function monthStart(month: string): number {
  const { year, index } = parts(month);
  return Date.UTC(year, index, 1);
}

/** When the allowance of `month` expires: the start of month + 1 + rolloverMonths. */
export const allowanceExpiry = (month: string, rolloverMonths: number): number => monthStart(addMonths(month, 1 + rolloverMonths));

/** Every month from `from` to `to`, both included, oldest first; empty when `from` is after `to`. */
export function monthsFromTo(from: string, to: string): string[] {
  const out: string[] = [];
  for (let m = from; m <= to; m = addMonths(m, 1)) out.push(m);
  return out;
}
