import { systemClock } from '@meterstream/platform/clock';
import type { Logger } from '@meterstream/platform/logger';
import type { Pool } from '@meterstream/platform/postgres';
import { backoffDelay } from '@meterstream/platform/backoff';
import {
  claimDueDeliveries, recordDelivered, recordFailed, type ClaimedDelivery,
} from '@meterstream/platform/stores/notifications';
import type { NotificationChannel } from '@meterstream/schemas';
import type { Mailer } from './email.js';
import { sendWebhook } from './webhook.js';

export interface DeliverySettings {
  /** After this many failed attempts a delivery is dead (replay sends it again). */
  maxAttempts: number;
  /** Exponential backoff between attempts: the first retry after about retryInitialMs, capped at retryMaxMs. */
  retryInitialMs: number;
  retryMaxMs: number;
  webhookTimeoutMs: number;
  /** Most deliveries one round claims. */
  batch: number;
}

export interface NotificationWorkerDeps {
  pool: Pool;
  log: Logger;
  settings: DeliverySettings;
  /** null: email disabled (SMTP_URL unset); email deliveries stay pending until a worker with SMTP runs. */
  mailer: Mailer | null;
  now?: () => number;
  /** Only these accounts' deliveries (tests, which share one database); all by default. */
  accounts?: readonly string[];
}

export interface RoundResult {
  claimed: number;
  delivered: number;
  retrying: number;
  dead: number;
}

/**
 * Delivers the notifications outbox, run by the scheduler (scheduler.ts, job notifications): each
 * round claims the due deliveries (SKIP LOCKED, leased, so any number of schedulers share the
 * work), sends them side by side outside any transaction and records each attempt: delivered,
 * retried after an exponential backoff, or dead after maxAttempts. Delivery is at least once: a
 * crash between the send and its record sends again with the same webhook-id.
 */
export class NotificationWorker {
  private readonly now: () => number;
  private readonly channels: readonly NotificationChannel[];

  constructor(private readonly deps: NotificationWorkerDeps) {
    this.now = deps.now ?? systemClock.now;
    this.channels = deps.mailer ? ['webhook', 'email'] : ['webhook'];
  }

  /** One round: claims what is due now, delivers it, records the outcomes. */
  async runOnce(): Promise<RoundResult> {
    const { settings: s, pool } = this.deps;
    const nowMs = this.now();
    // The lease outlasts a send's timeout, so a slow send is not claimed twice.
    const claimed = await claimDueDeliveries(pool, {
      nowMs, leaseMs: s.webhookTimeoutMs * 2, limit: s.batch, channels: this.channels, ...(this.deps.accounts ? { accounts: this.deps.accounts } : {}),
    });
    const result: RoundResult = { claimed: claimed.length, delivered: 0, retrying: 0, dead: 0 };
    await Promise.all(claimed.map(async (d) => {
      try {
        await this.send(d, nowMs);
        await recordDelivered(pool, d, this.now());
        result.delivered++;
      } catch (e) {
        const attempt = d.attempts + 1;
        const retryAtMs = attempt >= s.maxAttempts ? null : this.now() + backoffDelay(attempt, s.retryInitialMs, s.retryMaxMs);
        await recordFailed(pool, d, (e as Error).message, retryAtMs);
        if (retryAtMs === null) result.dead++;
        else result.retrying++;
        this.deps.log[retryAtMs === null ? 'error' : 'warn']({
          notification: d.notificationId, channel: d.channel, target: d.target, attempt, maxAttempts: s.maxAttempts,
          retryAt: retryAtMs === null ? null : new Date(retryAtMs).toISOString(), err: (e as Error).message,
        }, retryAtMs === null ? 'notification delivery dead after its last attempt (replay sends it again)' : 'notification delivery failed; retrying');
      }
    }));
    if (claimed.length > 0) this.deps.log.info({ ...result }, 'notification delivery round');
    return result;
  }

  /** Rounds until one finds less than a full batch due: everything due now has had its attempt. */
  async drain(): Promise<RoundResult> {
    const total: RoundResult = { claimed: 0, delivered: 0, retrying: 0, dead: 0 };
    for (;;) {
      const r = await this.runOnce();
      for (const k of ['claimed', 'delivered', 'retrying', 'dead'] as const) total[k] += r[k];
      if (r.claimed < this.deps.settings.batch) return total;
    }
  }

  private send(d: ClaimedDelivery, nowMs: number): Promise<void> {
    if (d.channel === 'email') return this.deps.mailer!.send(d);
    return sendWebhook(d, { nowMs, timeoutMs: this.deps.settings.webhookTimeoutMs });
  }

  close(): void {
    this.deps.mailer?.close();
  }
}
