import type { PriceInput, UsageEventInput } from '@meterstream/schemas';

/** The seeds' product mix: per-second voice, per-1000-token chat, per-image, per-word text, per-request calls. */
export const PRICE_LIST: Record<string, PriceInput> = {
  voice: { unit: 'second', unit_price: '0.60', per: 60, currency: 'USD' },
  chat: { unit: 'token', unit_price: '0.002', per: 1000, currency: 'USD' },
  image: { unit: 'image', unit_price: '0.04', per: 1, currency: 'USD' },
  text: { unit: 'word', unit_price: '0.000333', per: 1, currency: 'USD' },
  call: { unit: 'request', unit_price: '0.0015', per: 1, currency: 'USD' },
};

// weight, quantity range: calls and chat dominate real API traffic, voice and images are rarer
const MIX: [string, number, number, number][] = [
  ['call', 35, 1, 1],
  ['chat', 30, 50, 8000],
  ['text', 15, 5, 2000],
  ['voice', 12, 1, 900],
  ['image', 8, 1, 4],
];

/** Small, fast, seedable PRNG (mulberry32): the same seed gives the same workload. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Zipf(s) over n ranks: a few accounts are very busy, most are quiet. */
export function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 1; k <= n; k++) cdf[k - 1] = sum += 1 / Math.pow(k, s);
  return () => {
    const u = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface WorkloadOptions {
  accounts: string[];
  events: number;
  seed?: number;
  /** fraction of events that are re-sends of an earlier event (same id): must be charged once */
  duplicateFraction?: number;
  /** event timestamps spread over this window ending now */
  spanMs?: number;
  /** where the window starts instead (epoch ms): makes the timestamps reproducible too */
  startMs?: number;
  zipfExponent?: number;
  idPrefix?: string;
}

/** Generates usage events lazily, so a million of them never sit in memory at once. */
export function* workload(o: WorkloadOptions): Generator<UsageEventInput> {
  const random = rng(o.seed ?? 42);
  const pickAccount = zipf(o.accounts.length, o.zipfExponent ?? 1.07, random);
  const totalWeight = MIX.reduce((s, m) => s + m[1], 0);
  const span = o.spanMs ?? 10 * 60_000;
  const start = o.startMs ?? Date.now() - span;
  const recent: UsageEventInput[] = [];
  for (let i = 0; i < o.events; i++) {
    if (recent.length > 0 && random() < (o.duplicateFraction ?? 0)) {
      yield recent[Math.floor(random() * recent.length)]!;
      continue;
    }
    let w = random() * totalWeight;
    const [product, , min, max] = MIX.find((m) => (w -= m[1]) < 0) ?? MIX[0]!;
    const quantity = min + Math.floor(random() * (max - min + 1));
    const event: UsageEventInput = {
      id: `${o.idPrefix ?? 'ev'}-${i}`,
      account_id: o.accounts[pickAccount()]!,
      product,
      quantity: product === 'voice' && random() < 0.3 ? `${quantity}.5` : quantity,
      timestamp: new Date(start + Math.floor((i / o.events) * span)).toISOString(),
    };
    if (recent.length < 1000) recent.push(event);
    else recent[i % 1000] = event;
    yield event;
  }
}
