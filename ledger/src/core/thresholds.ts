import type { BillingMode } from '@meterstream/schemas';

/** The alerts on an account's money that fire once per crossing (issue 9, seeds 000 and 004). */
export type AlertType = 'balance.low' | 'balance.zero' | 'spend.alert_threshold' | 'spend.limit_reached';

/** The account's settings in effect (its own, else its plan's default); null: no such alert. */
export interface AlertSettings {
  billingMode: BillingMode;
  lowBalance: bigint | null;
  spendAlert: bigint | null;
  allowedLimit: bigint | null;
}

/** Which alerts have fired since they were last armed (stored on the account, migration 014). */
export interface Armed {
  /** balance.low fired and the balance has stayed under the threshold since. */
  lowNotified: boolean;
  /** balance.zero fired and the balance has stayed at or under zero since. */
  zeroNotified: boolean;
  /** The month (YYYY-MM) spend.alert_threshold last fired for: a new month re-arms it. */
  spendAlertMonth: string | null;
  /** The same for spend.limit_reached. */
  limitMonth: string | null;
}

export const ARMED: Armed = { lowNotified: false, zeroNotified: false, spendAlertMonth: null, limitMonth: null };

/** The account as a change left it. */
export interface Observation {
  /** Credits usable now (grants minus overdraft). */
  balance: bigint;
  /** The current month, YYYY-MM (UTC). */
  month: string;
  /** Spent in that month so far, the change included. */
  spent: bigint;
}

export interface Crossing {
  type: AlertType;
  /** The setting crossed: the low-balance threshold, 0 for balance.zero, the alert threshold or the allowed limit. */
  threshold: bigint;
}

/**
 * Which alerts a change fires, and the armed state after it. A balance alert fires when the
 * balance is under its threshold (below the low-balance threshold; at or below zero) and has not
 * fired since it was last at or above it, so once per downward crossing however many changes
 * stay under; a change that leaves the balance at or above re-arms it. Balance alerts are for
 * prepaid accounts (a postpaid account's usage accrues to its invoice; nothing pauses). A spend
 * alert fires once per month, on the first change after the month's spend reached its setting
 * (a spend of zero reaches nothing). With mayFire false (a grant: the balance only rises) the
 * change only re-arms. Pure: the caller stores `armed` and records the crossings.
 */
export function crossings(settings: AlertSettings, armed: Armed, obs: Observation, mayFire: boolean): { fired: Crossing[]; armed: Armed } {
  const fired: Crossing[] = [];
  const next: Armed = { ...armed };
  const prepaid = settings.billingMode === 'prepaid';

  const balanceAlert = (type: AlertType, threshold: bigint | null, under: (b: bigint, t: bigint) => boolean, key: 'lowNotified' | 'zeroNotified') => {
    if (!prepaid || threshold === null || !under(obs.balance, threshold)) {
      next[key] = false;
    } else if (!armed[key] && mayFire) {
      next[key] = true;
      fired.push({ type, threshold });
    }
  };
  balanceAlert('balance.low', settings.lowBalance, (b, t) => b < t, 'lowNotified');
  balanceAlert('balance.zero', 0n, (b) => b <= 0n, 'zeroNotified');

  const spendAlert = (type: AlertType, threshold: bigint | null, key: 'spendAlertMonth' | 'limitMonth') => {
    if (!mayFire || threshold === null || obs.spent <= 0n || obs.spent < threshold || armed[key] === obs.month) return;
    next[key] = obs.month;
    fired.push({ type, threshold });
  };
  spendAlert('spend.alert_threshold', settings.spendAlert, 'spendAlertMonth');
  spendAlert('spend.limit_reached', settings.allowedLimit, 'limitMonth');
  return { fired, armed: next };
}

export const sameArmed = (a: Armed, b: Armed): boolean =>
  a.lowNotified === b.lowNotified && a.zeroNotified === b.zeroNotified && a.spendAlertMonth === b.spendAlertMonth && a.limitMonth === b.limitMonth;

