import type { Kafka, Message, Producer, ProducerRecord } from 'kafkajs';
import { checkTimestampWindow, encodeUsageEvent, UsageEvent, type UsageEventInput } from '@meterstream/schemas';
import { SERIAL_PRODUCER_CONFIG, MAX_SEND_BYTES, serialSender } from '@meterstream/platform/kafka';
import { formatIssues } from './issues.js';
import { systemClock } from '@meterstream/platform/clock';

export interface UsageEventProducerOptions {
  topic: string;
  /** How long a send waits for company before its batch goes out. */
  lingerMs?: number;
  /** Largest produce request: a batch over it goes out as several (the broker refuses a record batch over 1 MiB). */
  maxSendBytes?: number;
  /** Messages accepted but not yet acknowledged; beyond it send()/publish() wait for room. */
  maxBufferedMessages?: number;
  /** Older events are refused, as the HTTP ingest refuses them (EVENT_MAX_AGE_DAYS). */
  maxAgeDays?: number;
  /** The clock the timestamp window is judged by (platform/src/clock.ts). */
  now?: () => number;
}

export class InvalidUsageEventError extends Error {
  override readonly name = 'InvalidUsageEventError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export class ProducerClosedError extends Error {
  override readonly name = 'ProducerClosedError';
  constructor() {
    super('the usage event producer is closed');
  }
}

/** One publish() call: all of its messages are queued at once, so they always share a batch. */
interface Ticket {
  resolve(): void;
  reject(e: unknown): void;
}
interface Waiter {
  count: number;
  admit(): void;
}

/**
 * Produces usage events straight to Kafka: validated like the HTTP ingest, keyed by account_id,
 * acks=all (a retry may write an event twice; the rater charges it once), batched, and bounded.
 * Batches go out one at a time: everything that queued while one was in flight forms the next
 * (group commit). A batch is bounded by
 * the buffer, not by a message count: each Kafka round trip then carries as many events as the
 * request size allows, and serial round trips stop capping the throughput.
 */
export class UsageEventProducer {
  private readonly topic: string;
  private readonly lingerMs: number;
  private readonly maxBuffered: number;
  private readonly now: () => number;
  private readonly maxAgeMs: number;
  private readonly produce: ReturnType<typeof serialSender>;
  // the next batch: messages in publish order, and the publishes they came from
  private messages: Message[] = [];
  private tickets: Ticket[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly unsettled = new Set<Promise<void>>();
  private buffered = 0;
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private flushing = 0;
  private closed = false;

  static async connect(kafka: Kafka, opts: UsageEventProducerOptions): Promise<UsageEventProducer> {
    const producer = kafka.producer(SERIAL_PRODUCER_CONFIG);
    await producer.connect();
    return new UsageEventProducer(producer, opts);
  }

  /**
   * `producer` must be connected and built with SERIAL_PRODUCER_CONFIG (connect() does both).
   */
  constructor(private readonly producer: Producer, opts: UsageEventProducerOptions) {
    this.topic = opts.topic;
    this.lingerMs = opts.lingerMs ?? 5;
    this.produce = serialSender(producer, opts.maxSendBytes ?? MAX_SEND_BYTES);
    this.maxBuffered = opts.maxBufferedMessages ?? 10_000;
    this.maxAgeMs = (opts.maxAgeDays ?? 35) * 86_400_000;
    this.now = opts.now ?? systemClock.now;
  }

  /**
   * Sends other records (ledger entries, see @meterstream/ledger/write-order) through this same
   * producer: one producer per process, and their requests coalesce with the events'.
   * Not counted in the buffer and not waited for by close(): what a shutdown cuts off, the
   * ledger's entry sweeper publishes later.
   */
  readonly sendRecord = (record: ProducerRecord): Promise<void> =>
    this.closed ? Promise.reject(new ProducerClosedError()) : this.produce(record);

  /** Messages accepted and not yet acknowledged by Kafka. */
  get bufferedMessages(): number {
    return this.buffered;
  }

  /**
   * Validates one event and resolves once Kafka acknowledged it. Rejects with
   * InvalidUsageEventError for an event the HTTP ingest would have rejected.
   */
  send(input: UsageEventInput, signal?: AbortSignal): Promise<void> {
    const parsed = UsageEvent.safeParse(input);
    if (!parsed.success) return Promise.reject(new InvalidUsageEventError('VALIDATION_ERROR', formatIssues(parsed.error.issues)));
    const window = checkTimestampWindow(parsed.data.timestamp, this.now(), this.maxAgeMs);
    if (!window.ok) return Promise.reject(new InvalidUsageEventError(window.code, window.message));
    return this.publish([parsed.data], signal);
  }

  /**
   * Sends events the caller has validated already; resolves once Kafka acknowledged all of them.
   * An aborted signal stops the waiting, not the events: any already admitted may still land,
   * which is safe because consumers deduplicate by event id.
   */
  publish(events: readonly UsageEvent[], signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new ProducerClosedError());
    if (events.length === 0) return Promise.resolve();
    const done = this.admit(events.length, signal).then(() => this.enqueue(events));
    this.unsettled.add(done);
    done.then(() => this.unsettled.delete(done), () => this.unsettled.delete(done));
    return signal ? untilAborted(done, signal) : done;
  }

  /** Sends everything accepted so far without waiting for the linger and resolves when it settled. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      this.schedule();
      await Promise.allSettled([...this.unsettled]);
    } finally {
      this.flushing--;
    }
  }

  /**
   * Refuses new events, flushes the accepted ones and disconnects. Waits at most timeoutMs for
   * Kafka (a shutdown must end even while the broker is away) and then throws, naming how many
   * events were left unacknowledged.
   */
  async close(timeoutMs = 30_000): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const flushed = await Promise.race([
      this.flush().then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    await this.producer.disconnect();
    if (!flushed) throw new Error(`${this.buffered} usage events were not acknowledged by Kafka within ${timeoutMs} ms of close`);
  }

  private hasRoom(count: number): boolean {
    // A publish larger than the whole buffer still goes through, alone, once the buffer is empty.
    return this.buffered === 0 || this.buffered + count <= this.maxBuffered;
  }

  private admit(count: number, signal?: AbortSignal): Promise<void> {
    if (this.waiters.length === 0 && this.hasRoom(count)) {
      this.buffered += count;
      return Promise.resolve();
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        count,
        admit: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private admitWaiters(): void {
    // Strictly first come, first served: a large publish is never starved by small ones.
    while (this.waiters.length > 0 && this.hasRoom(this.waiters[0]!.count)) {
      const w = this.waiters.shift()!;
      this.buffered += w.count;
      w.admit();
    }
  }

  private enqueue(events: readonly UsageEvent[]): Promise<void> {
    return new Promise((resolve, reject) => {
      for (const e of events) this.messages.push({ key: e.account_id, value: encodeUsageEvent(e) });
      this.tickets.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.sending) return; // the send loop takes whatever queued up once the current batch is acked
    // A full buffer cannot grow while it waits: lingering would only delay it.
    if (this.flushing > 0 || this.messages.length >= this.maxBuffered) {
      void this.pump();
      return;
    }
    this.timer ??= setTimeout(() => void this.pump(), this.lingerMs);
  }

  private async pump(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.messages.length > 0) {
        const { messages, tickets } = this;
        this.messages = [];
        this.tickets = [];
        try {
          await this.produce({ topic: this.topic, acks: -1, messages });
          for (const t of tickets) t.resolve();
        } catch (e) {
          // Some of the batch's requests may have landed: the callers retry, consumers deduplicate.
          for (const t of tickets) t.reject(e);
        }
        this.buffered -= messages.length;
        this.admitWaiters();
      }
    } finally {
      this.sending = false;
    }
  }
}

function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
