/**
 * Calendar months in UTC, as 'YYYY-MM', and the billing periods built on them: the periods
 * allowances and add-ons are granted and charged for. Pure.
 *
 * An account's period starts on its billing anchor day D (1..28) of each month, 00:00 UTC, and
 * runs to day D of the next month; it is named by the month it starts in, so with D = 1 periods
 * are calendar months and keep the names they always had.
 *
 * "Rolls over for R months": the allowance of period P can be used during P and the R periods after
 * it, and expires at the start of period P+1+R. With R = 2 and D = 1 the January allowance is
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

export class InvalidAnchorDayError extends Error {
  override readonly name = 'InvalidAnchorDayError';
}

/** 28 at most: every month has the day, so a period is never shorter than its month's name says. */
export const MAX_ANCHOR_DAY = 28;

function checkAnchor(anchorDay: number): number {
  if (!Number.isInteger(anchorDay) || anchorDay < 1 || anchorDay > MAX_ANCHOR_DAY) {
    throw new InvalidAnchorDayError(`a billing anchor day is an integer from 1 to ${MAX_ANCHOR_DAY}, not ${anchorDay}`);
  }
  return anchorDay;
}

/** When the period named `period` starts: day `anchorDay` of that month, 00:00 UTC, epoch ms. */
export function periodStart(period: string, anchorDay: number): number {
  const { year, index } = parts(period);
  return Date.UTC(year, index, checkAnchor(anchorDay));
}

/** The period an instant falls in: its month from the anchor day on, else the month before. */
export function periodAt(ms: number, anchorDay: number): string {
  const month = monthAt(ms);
  return ms >= periodStart(month, anchorDay) ? month : addMonths(month, -1);
}

/** The start of the period after the one `ms` falls in: where a plan change takes effect. */
export const nextPeriodStart = (ms: number, anchorDay: number): number => periodStart(addMonths(periodAt(ms, anchorDay), 1), anchorDay);

/** When the allowance of `period` expires: the start of period + 1 + rolloverMonths. */
export const allowanceExpiry = (period: string, rolloverMonths: number, anchorDay = 1): number =>
  periodStart(addMonths(period, 1 + rolloverMonths), anchorDay);

/** Every month from `from` to `to`, both included, oldest first; empty when `from` is after `to`. */
export function monthsFromTo(from: string, to: string): string[] {
  const out: string[] = [];
  for (let m = from; m <= to; m = addMonths(m, 1)) out.push(m);
  return out;
}
