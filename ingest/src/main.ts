import { ConfigError, loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { IngestConfig } from './config.js';
import { start } from './start.js';

let config: IngestConfig;
try {
  config = loadConfig(IngestConfig);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
const log = createLogger('ingest', config.LOG_LEVEL);
const ingest = await start({ config, log });
log.info({ url: ingest.url }, 'ingest listening');

let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down: finishing requests, flushing the producer');
  ingest.close().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
