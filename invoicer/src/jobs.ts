import PgBoss from 'pg-boss';
import { addMonths, monthAt } from '@meterstream/ledger/core/months';
import { refreshStatements } from './daily.js';
import { suspendOverdue } from './dunning.js';
import { runMonth, type InvoicerDeps } from './run.js';

/**
 * The invoicer's time-based jobs, on pg-boss in the scheduler's schema (pgboss): the ledger's
 * scheduler cannot import the invoicer (the invoicer depends on the ledger), so the invoicer
 * registers its own queues there, with the same guarantees: one run per cron tick across
 * instances, stately queues (at most one of a job at a time), idempotent jobs.
 */
export const INVOICER_JOBS = {
  /**
   * Daily at 00:05 UTC: the previous month is closed for every postpaid account whose billing
   * anchor day has come (1: on the 1st). Accounts invoiced already are skipped, so a missed day
   * catches up on the next.
   */
  monthly: { queue: 'invoicer.monthly', cron: '5 0 * * *' },
  /** 08:00 UTC (seed 001): the day's statements of month-to-date cost and the ClickHouse-vs-ledger drift alert. */
  daily: { queue: 'invoicer.daily', cron: '0 8 * * *' },
  /** Hourly: accounts with an invoice unpaid 7 days after its date are suspended. */
  dunning: { queue: 'invoicer.dunning', cron: '15 * * * *' },
} as const;
export type InvoicerJob = keyof typeof INVOICER_JOBS;

/** What each job does at the invoicer's clock's now. */
export function invoicerHandlers(deps: InvoicerDeps): Record<InvoicerJob, () => Promise<void>> {
  return {
    monthly: async () => {
      const now = deps.order.now();
      await runMonth(deps, { month: addMonths(monthAt(now), -1), anchorDayAtMost: new Date(now).getUTCDate() });
    },
    daily: async () => {
      await refreshStatements(deps);
    },
    dunning: async () => {
      const suspended = await suspendOverdue(deps.order, { ...(deps.gate ? { gate: deps.gate } : {}) });
      if (suspended.length > 0) deps.log.warn({ accounts: suspended }, 'accounts suspended for unpaid invoices');
    },
  };
}

export interface InvoicerJobs {
  trigger(job: InvoicerJob): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startInvoicerJobs(databaseUrl: string, deps: InvoicerDeps): Promise<InvoicerJobs> {
  const handlers = invoicerHandlers(deps);
  const boss = new PgBoss({ connectionString: databaseUrl, schema: 'pgboss', application_name: 'meterstream-invoicer', max: 2 });
  boss.on('error', (err) => deps.log.warn({ err }, 'pg-boss error'));
  await boss.start();
  for (const [name, job] of Object.entries(INVOICER_JOBS) as [InvoicerJob, (typeof INVOICER_JOBS)[InvoicerJob]][]) {
    await boss.createQueue(job.queue, { name: job.queue, policy: 'stately', retryLimit: 3, retryDelay: 60, retryBackoff: true });
    await boss.schedule(job.queue, job.cron, {}, { tz: 'UTC', singletonKey: name });
    await boss.work(job.queue, { batchSize: 1 }, handlers[name]);
  }
  deps.log.info({ jobs: Object.values(INVOICER_JOBS).map((j) => `${j.queue} (${j.cron})`) }, 'invoicer jobs running');
  return {
    trigger: async (job) => (await boss.send(INVOICER_JOBS[job].queue, {}, { singletonKey: job })) !== null,
    stop: () => boss.stop({ graceful: true, wait: true, timeout: 60_000 }),
  };
}
