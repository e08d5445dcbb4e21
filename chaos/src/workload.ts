import { setTimeout as sleep } from 'node:timers/promises';
import type { UsageEventInput } from '@meterstream/schemas';
import { InvalidUsageEventError, type UsageEventProducer } from '@meterstream/ingest';
import { rng, workload } from '@meterstream/bench/workload';

export type Route = 'http' | 'producer';

/** One distinct event (account, id) and what became of sending it. */
export interface SentEvent {
  event: UsageEventInput;
  via: Route;
  attempts: number;
  /** answered 202 with its id among the accepted ones, or acknowledged to the producer client */
  confirmed: boolean;
  /** why ingest or the producer client refused it (an event of this workload is always valid) */
  rejected?: string;
}

export interface WorkloadOptions {
  ingestUrl: string;
  adminKey: string;
  producer: UsageEventProducer;
  accounts: string[];
  seed: number;
  idPrefix: string;
  /** when the first event is due (epoch ms); event i is due, and timestamped, at startMs + i / rate */
  startMs: number;
  seconds: number;
  eventsPerSecond: number;
  /** after the last event is due, how long unconfirmed events are still retried */
  retryForMs: number;
  now?: () => number;
}

const HTTP_LANES = 2;
const HTTP_BATCH = 50;
const HTTP_TIMEOUT_MS = 15_000;
const PRODUCER_TIMEOUT_MS = 10_000;
const PRODUCER_IN_FLIGHT = 1_000;
const SHARE_VIA_PRODUCER = 0.25;

export const eventKey = (accountId: string, eventId: string): string => `${accountId}\u0000${eventId}`;

type Attempt = { kind: 'accepted'; accepted: string[]; rejected: { index: number; code: string; message: string }[] }
  | { kind: 'retry'; retryAfterMs?: number }
  | { kind: 'refused'; why: string };

/**
 * The client side of the run: events of the bench's product mix over the run's accounts, paced in
 * real time, about three in four through POST /v1/events and the rest through the producer client,
 * a few of them re-sent on purpose. A request answered 503 or 429, timing out or losing its
 * connection is retried with the same event ids, as the API tells clients to, until it is
 * confirmed or retryForMs after the last event; so are failed sends of the producer client.
 */
export class ChaosWorkload {
  readonly sent = new Map<string, SentEvent>();
  /** HTTP outcomes ('202', '503', 'ECONNREFUSED', 'timeout', ...) and producer-client failures, by kind */
  readonly outcomes = new Map<string, number>();
  generated = 0;
  private readonly now: () => number;
  private readonly giveUpAt: number;

  constructor(private readonly o: WorkloadOptions) {
    this.now = o.now ?? Date.now;
    this.giveUpAt = o.startMs + o.seconds * 1000 + o.retryForMs;
  }

  async run(): Promise<void> {
    const total = Math.round(this.o.seconds * this.o.eventsPerSecond);
    const spanMs = this.o.seconds * 1000;
    const route = rng(this.o.seed ^ 0x5bd1e995);
    const events = workload({
      accounts: this.o.accounts, events: total, seed: this.o.seed, duplicateFraction: 0.02,
      startMs: this.o.startMs, spanMs, idPrefix: this.o.idPrefix,
    });
    const queue: UsageEventInput[] = [];
    const producing = new Set<Promise<void>>();
    let dispatched = false;
    const lanes = Array.from({ length: HTTP_LANES }, async () => {
      while (!dispatched || queue.length > 0) {
        if (queue.length === 0) await sleep(20);
        else await this.post(queue.splice(0, HTTP_BATCH));
      }
    });
    let i = 0;
    for (const e of events) {
      const due = this.o.startMs + (i++ * spanMs) / total;
      if (due > this.now()) await sleep(due - this.now());
      this.generated++;
      const via: Route = route() < SHARE_VIA_PRODUCER ? 'producer' : 'http';
      const key = eventKey(e.account_id, e.id);
      if (!this.sent.has(key)) this.sent.set(key, { event: e, via, attempts: 0, confirmed: false });
      if (via === 'http') {
        queue.push(e);
      } else {
        while (producing.size >= PRODUCER_IN_FLIGHT) await Promise.race(producing);
        const p = this.produce(e).finally(() => producing.delete(p));
        producing.add(p);
      }
    }
    dispatched = true;
    await Promise.all([...lanes, ...producing]);
  }

  private count(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }

  private entry(e: UsageEventInput): SentEvent {
    return this.sent.get(eventKey(e.account_id, e.id))!;
  }

  private async post(batch: UsageEventInput[]): Promise<void> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      for (const e of batch) this.entry(e).attempts++;
      const r = await this.attempt(batch);
      if (r.kind === 'accepted') {
        const byId = new Map(batch.map((e) => [e.id, e]));
        for (const id of r.accepted) {
          const e = byId.get(id);
          if (e) this.entry(e).confirmed = true;
        }
        for (const x of r.rejected) {
          const e = batch[x.index];
          if (e) this.entry(e).rejected = `HTTP 202 rejected it: ${x.code}: ${x.message}`;
        }
        return;
      }
      if (r.kind === 'refused') {
        for (const e of batch) this.entry(e).rejected = r.why;
        return;
      }
      if (this.now() > this.giveUpAt) return;
      await sleep(r.retryAfterMs ?? delay);
    }
  }

  private async attempt(batch: UsageEventInput[]): Promise<Attempt> {
    let res: Response;
    try {
      res = await fetch(`${this.o.ingestUrl}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.o.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(batch),
        signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      this.count(err.name === 'TimeoutError' ? 'HTTP timeout' : `HTTP ${err.cause?.code ?? err.name}`);
      return { kind: 'retry' };
    }
    this.count(`HTTP ${res.status}`);
    const text = await res.text().catch((e: unknown) => `(body lost: ${String(e)})`);
    if (res.status === 202) {
      try {
        return { kind: 'accepted', ...(JSON.parse(text) as { accepted: string[]; rejected: { index: number; code: string; message: string }[] }) };
      } catch {
        return { kind: 'retry' }; // the connection broke mid-body: nothing is known, send again
      }
    }
    if (res.status === 429 || res.status >= 500) {
      const after = Number(res.headers.get('retry-after'));
      return { kind: 'retry', ...(after > 0 ? { retryAfterMs: Math.min(after * 1000, 5_000) } : {}) };
    }
    return { kind: 'refused', why: `HTTP ${res.status}: ${text.slice(0, 300)}` };
  }

  private async produce(e: UsageEventInput): Promise<void> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      this.entry(e).attempts++;
      try {
        await this.o.producer.send(e, AbortSignal.timeout(PRODUCER_TIMEOUT_MS));
        this.entry(e).confirmed = true;
        return;
      } catch (err) {
        if (err instanceof InvalidUsageEventError) {
          this.entry(e).rejected = `producer client refused it: ${err.code}: ${err.message}`;
          return;
        }
        this.count(`producer ${(err as Error).name}`);
      }
      if (this.now() > this.giveUpAt) return;
      await sleep(delay);
    }
  }
}
