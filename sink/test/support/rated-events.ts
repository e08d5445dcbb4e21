import { formatMicros, priceMicros, RatedEvent, toMicros } from '@meterstream/schemas';

const PRICES = [
  { product: 'chat', unit: 'token', unit_price: '0.002', per: 1000 },
  { product: 'voice', unit: 'second', unit_price: '0.60', per: 60 },
  { product: 'image', unit: 'image', unit_price: '0.04', per: 1 },
  { product: 'text', unit: 'word', unit_price: '0.000333', per: 1 },
] as const;

/**
 * The i-th rated event of a workload: amounts priced like the rater does and split across grants,
 * postpaid and overdraft, timestamps spread over a month boundary. Parsed with RatedEvent, so a
 * factory that drifted from the contract fails loudly instead of testing the wrong thing.
 */
export function ratedEvent(i: number, accounts: readonly string[], over: Partial<RatedEvent> = {}): RatedEvent {
  const p = PRICES[i % PRICES.length]!;
  const quantity = formatMicros(BigInt(1 + ((i * 7919) % 9_000)) * 1_000_000n + BigInt((i * 104_729) % 1_000_000));
  const amount = priceMicros(toMicros(quantity), toMicros(p.unit_price), BigInt(p.per));
  const fromGrants = (amount * BigInt(i % 4)) / 3n;
  const overdraft = i % 5 === 0 ? amount - fromGrants : 0n;
  const postpaid = amount - fromGrants - overdraft;
  // 2024-01-30 00:00 UTC plus up to ~4 days: January and February, several days each.
  const t = Date.UTC(2024, 0, 30) + ((i * 97_531_013) % (4 * 86_400_000));
  return RatedEvent.parse({
    event_id: `ev-${i}`,
    account_id: accounts[i % accounts.length],
    product: p.product,
    quantity,
    unit: p.unit,
    unit_price: p.unit_price,
    per: p.per,
    currency: i % 7 === 0 ? 'EUR' : 'USD',
    amount: formatMicros(amount),
    grants: fromGrants > 0n ? [{ grant_id: `g-${i % 3}`, kind: 'allowance', amount: formatMicros(fromGrants) }] : [],
    postpaid: formatMicros(postpaid),
    overdraft: formatMicros(overdraft),
    balance_after: formatMicros(-overdraft),
    ledger_seq: i + 1,
    timestamp: new Date(t).toISOString(),
    rated_at: new Date(t + 1_234).toISOString(),
    ...(i % 3 === 0 ? { properties: { region: `r${i % 2}` } } : {}),
    ...(i % 4 === 1 ? { workspace_id: `ws_${(i % 5).toString().padStart(24, '0')}` } : {}),
    ...over,
  });
}

export function ratedEvents(from: number, to: number, accounts: readonly string[]): RatedEvent[] {
  return Array.from({ length: to - from }, (_, k) => ratedEvent(from + k, accounts));
}

export interface Totals {
  key: string;
  events: string;
  quantity: string;
  amount: string;
  from_grants: string;
  postpaid: string;
  overdraft: string;
}

/** What usage_daily / usage_monthly must add up to, in exact micro-units, keyed like totalsIn(). */
export function expectedTotals(events: readonly RatedEvent[], period: 'day' | 'month'): Totals[] {
  const acc = new Map<string, bigint[]>();
  for (const e of events) {
    const day = e.timestamp.slice(0, 10);
    const key = [e.account_id, period === 'day' ? day : `${day.slice(0, 7)}-01`, e.product, e.currency].join('|');
    const fromGrants = e.grants.reduce((s, g) => s + toMicros(g.amount), 0n);
    const add = [1n, toMicros(e.quantity), toMicros(e.amount), fromGrants, toMicros(e.postpaid), toMicros(e.overdraft)];
    const cur = acc.get(key) ?? [0n, 0n, 0n, 0n, 0n, 0n];
    acc.set(key, cur.map((v, k) => v + add[k]!));
  }
  return [...acc.entries()]
    .map(([key, v]) => ({
      key, events: v[0]!.toString(), quantity: v[1]!.toString(), amount: v[2]!.toString(),
      from_grants: v[3]!.toString(), postpaid: v[4]!.toString(), overdraft: v[5]!.toString(),
    }))
    .sort(byKey);
}

export const byKey = (a: { key: string }, b: { key: string }): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
