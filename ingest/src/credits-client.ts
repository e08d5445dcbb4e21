import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatMicros } from '@meterstream/schemas';
import { systemClock, type Clock } from '@meterstream/platform/clock';

/** A hold the gate created: `amount` (decimal text) is reserved until it is captured, released or expires. */
export interface Hold {
  hold_id: string;
  account_id: string;
  amount: string;
  currency: string;
  expires_at: string;
}

export interface AuthorizeRequest {
  account: string;
  product: string;
  /** The most the call may use, in the product's unit: decimal text, or bigint micro-units. */
  maxQuantity: string | bigint;
  /**
   * The same key asks for the same hold (a retry after a timeout never reserves twice); a fresh
   * one per withCredits call by default.
   */
  idempotencyKey?: string;
}

/** What the work reports: the quantity it really used (decimal text or bigint micro-units), and its own result. */
export type WorkOutcome<T> = string | bigint | { quantity: string | bigint; result: T };

export interface Charged<T> {
  hold: Hold;
  /** The usage event that captured the hold (charged min(its price, the hold)). */
  eventId: string;
  quantity: string;
  result: T | undefined;
}

export interface CreditsClientOptions {
  /** The ingest's base URL, e.g. https://meter.example.com */
  baseUrl: string;
  /** A service key of the account or of its tenant (or the admin key). */
  apiKey: string;
  /** Per HTTP request. */
  timeoutMs?: number;
  /** Retries of a request that met a 503 or no answer (each with the same idempotency key or event id). */
  retries?: number;
  retryDelayMs?: number;
  clock?: Clock;
  fetch?: typeof fetch;
  /** Told when a hold could not be released after failed work; the hold then expires by its TTL and costs nothing. */
  onReleaseFailure?: (err: unknown, hold: Hold) => void;
}

/** The gate (or a route of it) answered with an error envelope the caller cannot retry its way out of. */
export class CreditsRequestError extends Error {
  override name = 'CreditsRequestError';
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The gate refused the authorization: the call must not run. Terminal: the same request gets the same answer. */
export class CreditsRefusedError extends CreditsRequestError {
  override name = 'CreditsRefusedError';
}
/** 402 PAYMENT_REQUIRED: not enough credits for the price of the call (seed 002). */
export class PaymentRequiredError extends CreditsRefusedError {
  override name = 'PaymentRequiredError';
}
/** The postpaid monthly limit is reached; an increase can be requested (seed 001). */
export class MonthlyLimitReachedError extends CreditsRefusedError {
  override name = 'MonthlyLimitReachedError';
}
/** The hard monthly allowed limit is reached: blocked until raised or the month resets (seed 004). */
export class AllowedLimitReachedError extends CreditsRefusedError {
  override name = 'AllowedLimitReachedError';
}
/** The account is suspended for non-payment (seed 001). */
export class AccountSuspendedError extends CreditsRefusedError {
  override name = 'AccountSuspendedError';
}
/** Free credits used up and no payment method on a postpaid account (seed 001). */
export class CardRequiredError extends CreditsRefusedError {
  override name = 'CardRequiredError';
}

const REFUSALS: Record<string, new (status: number, code: string, message: string) => CreditsRefusedError> = {
  PAYMENT_REQUIRED: PaymentRequiredError,
  MONTHLY_LIMIT_REACHED: MonthlyLimitReachedError,
  ALLOWED_LIMIT_REACHED: AllowedLimitReachedError,
  ACCOUNT_SUSPENDED: AccountSuspendedError,
  CARD_REQUIRED: CardRequiredError,
};

/** The gate could not decide (503, or no answer) after the retries: fail closed, the call must not run. */
export class GateUnavailableError extends Error {
  override readonly name = 'GateUnavailableError';
}

/**
 * The work succeeded but its usage event was not confirmed: the hold stays open (it is not
 * released, the call ran). Send the event again with `eventId` (idempotent); a capture after the
 * hold expired is still charged, capped at the hold.
 */
export class CaptureFailedError extends Error {
  override readonly name = 'CaptureFailedError';
  constructor(readonly hold: Hold, readonly eventId: string, readonly quantity: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

const asQuantity = (q: string | bigint) => (typeof q === 'bigint' ? formatMicros(q) : q);

interface Answer {
  status: number;
  body: unknown;
}

/**
 * The spend gate's contract as calls over HTTP: authorize (a hold), capture (a usage event
 * carrying the hold id), release, and withCredits, which strings them around a piece of work.
 * Usage goes through POST /v1/events, not straight to Kafka: a service selling usage needs only
 * the ingest URL and its API key, and the capture is validated and authorized where the hold
 * was (the key's accounts), answering 202 only once Kafka has it.
 */
export class CreditsClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: CreditsClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 100;
    this.clock = opts.clock ?? systemClock;
    this.fetch = opts.fetch ?? fetch;
  }

  /** A hold for the price of maxQuantity, or a CreditsRefusedError (PaymentRequiredError, ...) saying why not. */
  async authorize(req: AuthorizeRequest): Promise<Hold> {
    const key = req.idempotencyKey ?? randomUUID();
    const answer = await this.call('POST', '/v1/authorize', {
      account_id: req.account, product: req.product, max_quantity: asQuantity(req.maxQuantity),
    }, { 'idempotency-key': key });
    if (answer.status !== 200) throw refusal(answer);
    return answer.body as Hold;
  }

  /** Frees the hold: the call failed and costs nothing. Releasing twice is harmless. */
  async release(holdId: string): Promise<void> {
    const answer = await this.call('POST', `/v1/holds/${encodeURIComponent(holdId)}/release`);
    if (answer.status >= 300) throw refusal(answer);
  }

  /**
   * The usage event that captures the hold; charged min(its price, the hold). The event id
   * defaults to one derived from the hold, so that any retry, or a rerun with the same
   * idempotency key, captures once.
   */
  async capture(hold: Hold, product: string, quantity: string | bigint, eventId = `capture:${hold.hold_id}`): Promise<string> {
    const event = {
      id: eventId, account_id: hold.account_id, product, quantity: asQuantity(quantity),
      timestamp: new Date(this.clock.now()).toISOString(), hold_id: hold.hold_id,
    };
    const answer = await this.call('POST', '/v1/events', event);
    if (answer.status !== 202) throw refusal(answer);
    const { rejected } = answer.body as { rejected: { code: string; message: string }[] };
    if (rejected.length > 0) throw new CreditsRequestError(answer.status, rejected[0]!.code, rejected[0]!.message);
    return eventId;
  }

  /**
   * Authorizes, runs the work, then captures the hold with the quantity the work reports; when
   * the work throws, releases the hold (the call costs zero) and rethrows. A refusal throws its
   * CreditsRefusedError before the work runs; so does GateUnavailableError (never a free pass).
   */
  async withCredits<T = undefined>(req: AuthorizeRequest, work: (hold: Hold) => Promise<WorkOutcome<T>>): Promise<Charged<T>> {
    const hold = await this.authorize(req);
    let outcome: WorkOutcome<T>;
    try {
      outcome = await work(hold);
    } catch (e) {
      await this.release(hold.hold_id).catch((err: unknown) => this.opts.onReleaseFailure?.(err, hold));
      throw e;
    }
    const used = typeof outcome === 'object' ? outcome : { quantity: outcome, result: undefined };
    const quantity = asQuantity(used.quantity);
    const eventId = `capture:${hold.hold_id}`;
    try {
      await this.capture(hold, req.product, quantity, eventId);
    } catch (e) {
      throw new CaptureFailedError(hold, eventId, quantity, `the work succeeded but its usage event was not confirmed: ${(e as Error).message}`, { cause: e });
    }
    return { hold, eventId, quantity, result: used.result };
  }

  /** One request, retried on a 503 or no answer; anything else is the answer. */
  private async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    let last = '';
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(this.retryDelayMs * 2 ** (attempt - 1));
      try {
        const res = await this.fetch(`${this.baseUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${this.opts.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const answer = { status: res.status, body: parseBody(await res.text()) };
        if (answer.status !== 503) return answer;
        last = `503 ${errorOf(answer.body).message}`;
      } catch (e) {
        last = (e as Error).message;
      }
    }
    throw new GateUnavailableError(`${method} ${path}: no decision after ${this.retries + 1} attempts (${last})`);
  }
}

/** JSON, or the text itself when something in between (a proxy) answered otherwise. */
function parseBody(text: string): unknown {
  try {
    return text === '' ? null : JSON.parse(text);
  } catch {
    return text;
  }
}

function errorOf(body: unknown): { code: string; message: string } {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return { code: typeof error?.code === 'string' ? error.code : 'UNKNOWN', message: typeof error?.message === 'string' ? error.message : JSON.stringify(body) };
}

function refusal(answer: Answer): CreditsRequestError {
  const { code, message } = errorOf(answer.body);
  const Refusal = REFUSALS[code];
  return Refusal ? new Refusal(answer.status, code, message) : new CreditsRequestError(answer.status, code, message);
}
