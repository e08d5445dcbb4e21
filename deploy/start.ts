// `npm start`: every service (ingest, rater, sink) in this one process on the embedded defaults,
// until SIGTERM or SIGINT; the long-running form of `npm run demo` (see pipeline.ts for why one
// process). Run the services one by one instead when ClickHouse is a server (CLICKHOUSE_URL).
import { ConfigError } from '@meterstream/platform/config';
import { startPipeline, type Pipeline } from './pipeline.js';

let exitCode = 0;
let stopping = false;
let pipeline: Pipeline | undefined;
const stop = (reason: string) => {
  if (stopping || !pipeline) return;
  stopping = true;
  const p = pipeline;
  p.log.info({ reason }, 'meterstream stopping: finishing requests and the current batches');
  p.stop().then(
    () => {
      p.log.info('meterstream stopped');
      process.exit(exitCode);
    },
    (err: unknown) => {
      p.log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
// Installed before start-up completes: a signal meanwhile stops the pipeline as soon as it runs.
let pending: string | undefined;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => (pipeline ? stop(signal) : (pending = signal)));
}

try {
  pipeline = await startPipeline(process.env, 'meterstream', (err) => {
    exitCode = 1;
    pipeline?.log.fatal({ err }, 'the sink stopped consuming for good');
    stop('sink failed');
  });
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
const { config, ingest, log } = pipeline;
log.info(
  { url: ingest.url, clickhouse: config.CLICKHOUSE_URL ?? `chDB in-process (${config.CHDB_PATH})`, kafka: config.KAFKA_BROKERS },
  'meterstream running: ingest, rater, sink, scheduler and invoicer in one process',
);
if (pending) stop(pending);
