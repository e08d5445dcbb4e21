import { ConfigError, loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { retryWithBackoff, RetryAborted } from '@meterstream/platform/backoff';
import { IngestConfig } from './config.js';
import { start, type RunningIngest } from './start.js';

let config: IngestConfig;
try {
  config = loadConfig(IngestConfig);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
const log = createLogger('ingest', config.LOG_LEVEL);
const starting = new AbortController();
let ingest: RunningIngest | undefined;

let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down: finishing requests, flushing the producer');
  starting.abort();
  (ingest?.close() ?? Promise.resolve()).then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

// Kafka may be down or restarting when ingest starts: wait for it rather than exit, which
// without a supervisor would leave the API down for good. A failed start leaves nothing open.
try {
  ingest = await retryWithBackoff(() => start({ config, log }), {
    initialMs: 500,
    maxMs: 10_000,
    signal: starting.signal,
    onError: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs }, 'ingest could not start (Kafka unreachable?); retrying'),
  });
  if (stopping) await ingest.close();
  else log.info({ url: ingest.url }, 'ingest listening');
} catch (err) {
  if (!(err instanceof RetryAborted)) throw err;
}
