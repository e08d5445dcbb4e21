import { once } from 'node:events';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { createKafka, ensureTopicsOf } from '@meterstream/platform/kafka';
import { createClickHouse } from '@meterstream/platform/clickhouse';
import { migrateClickHouse } from '@meterstream/platform/migrate';
import { SinkConfig } from './config.js';
import { retryWithBackoff, RetryAborted } from '@meterstream/platform/backoff';
import { startSink } from './sink.js';

const config = loadConfig(SinkConfig);
const log = createLogger('sink', config.LOG_LEVEL);
const shutdown = new AbortController();
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'sink stopping: finishing the current batch');
    // Leaving the group needs Kafka; an unreachable broker must not keep the process forever.
    setTimeout(() => {
      log.error({ afterMs: config.SINK_SHUTDOWN_TIMEOUT_MS }, 'sink did not stop in time; exiting (its offsets stay uncommitted)');
      process.exit(1);
    }, config.SINK_SHUTDOWN_TIMEOUT_MS).unref();
    shutdown.abort();
  });
}

const ch = await createClickHouse({ url: config.CLICKHOUSE_URL, chdbPath: config.CHDB_PATH });
const kafka = createKafka(config.KAFKA_BROKERS, 'meterstream-sink', log, config);
let exitCode = 0;
try {
  // ClickHouse may still be starting: wait for it here instead of exiting into a restart loop.
  await retryWithBackoff(() => migrateClickHouse(ch, config.CLICKHOUSE_DATABASE, log), {
    initialMs: config.SINK_RETRY_INITIAL_MS,
    maxMs: config.SINK_RETRY_MAX_MS,
    signal: shutdown.signal,
    onError: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs }, 'ClickHouse migration failed; retrying'),
  });
  // Kafka may be down or restarting too: waited for the same way.
  const sink = await retryWithBackoff(async () => {
    await ensureTopicsOf(kafka, config.KAFKA_TOPIC_PREFIX, config.KAFKA_EVENTS_PARTITIONS);
    return startSink({
      config, ch, database: config.CLICKHOUSE_DATABASE, kafka, log,
      onFatal: () => {
        exitCode = 1;
        shutdown.abort();
      },
    });
  }, {
    initialMs: config.SINK_RETRY_INITIAL_MS,
    maxMs: config.SINK_RETRY_MAX_MS,
    signal: shutdown.signal,
    onError: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs }, 'sink could not start (Kafka unreachable); retrying'),
  });
  log.info({ group: config.SINK_GROUP_ID, database: config.CLICKHOUSE_DATABASE }, 'sink started');
  if (!shutdown.signal.aborted) await once(shutdown.signal, 'abort');
  await sink.stop();
} catch (err) {
  if (!(err instanceof RetryAborted)) {
    log.fatal({ err }, 'sink failed');
    exitCode = 1;
  }
} finally {
  await ch.close();
}
log.info('sink stopped');
process.exit(exitCode);
