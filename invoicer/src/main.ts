// The invoicer's jobs alone (`npx tsx invoicer/src/main.ts`): the monthly run, the 08:00 refresh
// and dunning on their crons (jobs.ts), beside the ledger's scheduler on the same pg-boss schema.
import { ConfigError, loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { migratePostgres } from '@meterstream/platform/migrate';
import { InvoicerConfig } from './config.js';
import { startInvoicerJobs } from './jobs.js';
import { openInvoicer } from './open.js';

let config: InvoicerConfig;
try {
  config = loadConfig(InvoicerConfig, process.env);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
const log = createLogger('invoicer', config.LOG_LEVEL);
await migratePostgres(config.DATABASE_URL, log);
const opened = await openInvoicer(config, log);
const jobs = await startInvoicerJobs(config.DATABASE_URL, opened.deps);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'invoicer stopping after the running jobs');
    void jobs.stop().then(async () => {
      await opened.close();
      process.exit(0);
    });
  });
}
