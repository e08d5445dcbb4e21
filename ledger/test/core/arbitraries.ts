// Random account states and usage events for the money core's property tests.
import fc from 'fast-check';
import { BillingMode, GrantKind, INT64_MAX, toMicros, type UsageEvent } from '@meterstream/schemas';
import { compareBurnOrder, type AccountState, type GrantState } from '@meterstream/ledger/account-state';
import type { PriceEntry, PriceLookup } from '@meterstream/ledger/core/price';
import type { SourceEvent } from '@meterstream/ledger/core/rate';

/** An hour before the end of a month, so that events fall on both sides of a month boundary. */
export const T0 = Date.parse('2026-11-30T23:00:00Z');
export const STATE_MONTH = '2026-11';
const MINUTE = 60_000;

export const PRICES: Record<string, PriceEntry> = {
  voice: { model: 'per_unit', unit: 'second', unitPrice: toMicros('0.60'), per: 60n },
  clip: { model: 'per_increment', unit: 'second', unitPrice: toMicros('0.60'), per: 60n, incrementMicros: toMicros('1') },
  chat: { model: 'per_unit', unit: 'token', unitPrice: toMicros('0.002'), per: 1000n },
  image: { model: 'per_unit', unit: 'image', unitPrice: toMicros('0.04'), per: 1n },
};
export const lookup: PriceLookup = (product) => PRICES[product];

/** Small amounts mostly; now and then one an int8 sum is close to. */
const money = (max: bigint) => fc.oneof(
  { weight: 9, arbitrary: fc.bigInt({ min: 0n, max }) },
  { weight: 1, arbitrary: fc.bigInt({ min: INT64_MAX - 2n * max, max: INT64_MAX }) },
);

/** Few distinct priorities and expiries, so that burn-order ties are common; some expire before or during the events. */
const arbGrant = fc.record({
  kind: fc.constantFrom(...GrantKind.options),
  remaining: fc.bigInt({ min: 1n, max: 5_000_000n }),
  used: fc.bigInt({ min: 0n, max: 1_000_000n }),
  priority: fc.integer({ min: 0, max: 2 }),
  expiresAt: fc.option(fc.integer({ min: -4, max: 4 }).map((k) => T0 + k * 30 * MINUTE), { nil: null }),
});

export const arbAccount = (id: string): fc.Arbitrary<AccountState> => fc.record({
  currency: fc.constantFrom('USD' as const, 'EUR' as const),
  billingMode: fc.constantFrom(...BillingMode.options),
  overdraft: money(10_000_000n),
  postpaidAmount: money(10_000_000n),
  ledgerSeq: fc.bigInt({ min: 0n, max: 1000n }),
  grants: fc.array(arbGrant, { maxLength: 5 }),
}).map((s) => ({
  ...s,
  id,
  postpaidMonth: STATE_MONTH,
  grants: s.grants.map((g, i): GrantState => ({
    id: `${id}-g${i}`, kind: g.kind, amount: g.remaining + g.used, remaining: g.remaining,
    expiresAt: g.expiresAt, priority: g.priority, createdSeq: BigInt(i + 1),
  })).sort(compareBurnOrder),
}));

export const ACCOUNTS = ['a0', 'a1', 'a2'];

/** States of a0..a2 (some may be missing: an unknown account). */
export const arbStates: fc.Arbitrary<Map<string, AccountState>> = fc
  .tuple(...ACCOUNTS.map((id) => fc.option(arbAccount(id), { freq: 6, nil: undefined })))
  .map((states) => new Map(states.filter((s) => s !== undefined).map((s) => [s.id, s])));

const arbEventSpec = fc.record({
  account: fc.constantFrom(...ACCOUNTS),
  product: fc.constantFrom(...Object.keys(PRICES), 'unpriced'),
  quantity: fc.oneof(
    { weight: 20, arbitrary: fc.bigInt({ min: 0n, max: 200_000_000n }) },
    // Now and then one costing more than one event may (refused as AMOUNT_OUT_OF_RANGE).
    { weight: 1, arbitrary: fc.bigInt({ min: 10n ** 15n, max: 10n ** 18n - 1n }) },
  ),
  // Minutes from T0 (the state's month ends at +60), and now and then a month late.
  minute: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: -180, max: 180 }) }, { weight: 1, arbitrary: fc.constant(-40 * 24 * 60) }),
  // Few ids, so that the same event is sent again now and then.
  id: fc.nat(40),
});

export const arbEvents = (maxLength = 60): fc.Arbitrary<SourceEvent[]> => fc.array(arbEventSpec, { maxLength, size: 'max' }).map((specs) => specs.map((s, i) => {
  const eventMs = T0 + s.minute * MINUTE;
  const event: UsageEvent = { id: `e${s.id}`, account_id: s.account, product: s.product, quantity: s.quantity, timestamp: new Date(eventMs).toISOString() };
  return { offset: String(i), event, eventMs };
}));

/** Seed 000's rule, written out here rather than taken from the code under test: a grant expired at its expiry instant. */
export const unexpiredAt = (g: GrantState, atMs: number): boolean => g.expiresAt === null || atMs < g.expiresAt;

/** Freezes a state and its grants: any write to them then throws (ESM code runs in strict mode). */
export function deepFreeze(state: AccountState): AccountState {
  for (const g of state.grants) Object.freeze(g);
  Object.freeze(state.grants);
  return Object.freeze(state);
}
