// Re-produces dead-lettered events to usage.events once their cause is fixed (a price created
// later, an account created late):
//   npm run replay -- [--code UNKNOWN_PRODUCT] [--account ID] [--since 2026-11-01T00:00:00Z]
// Each dead letter is replayed once (marked in Postgres); an event the ledger already holds is
// skipped, and the ledger's primary key charges any event once however often it is replayed.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { BaseConfig, loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { createPool } from '@meterstream/platform/postgres';
import { createKafka, SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import { Id, IsoTimestamp, topicNames } from '@meterstream/schemas';
import { DEAD_LETTER_CODES } from '@meterstream/ledger/dead-letters';
import { replayDeadLetters } from './dead-letters.js';

const Args = z.object({
  code: z.enum(DEAD_LETTER_CODES).optional(),
  account: Id.optional(),
  since: IsoTimestamp.transform((t) => new Date(t)).optional(),
});

const config = loadConfig(BaseConfig);
const log = createLogger('replay', config.LOG_LEVEL);
const { values } = parseArgs({ options: { code: { type: 'string' }, account: { type: 'string' }, since: { type: 'string' } } });
const args = Args.safeParse(values);
if (!args.success) {
  for (const i of args.error.issues) console.error(`--${i.path.join('.')}: ${i.message}`);
  process.exit(2);
}

const pool = createPool(config.DATABASE_URL, 2, { applicationName: 'meterstream-replay', log, timeouts: config });
const kafka = createKafka(config.KAFKA_BROKERS, 'meterstream-replay', log, config);
const producer = kafka.producer(SERIAL_PRODUCER_CONFIG);
await producer.connect();
try {
  const result = await replayDeadLetters(pool, serialSender(producer), topicNames(config.KAFKA_TOPIC_PREFIX), args.data, log);
  log.info({ ...result, filter: values }, 'replay done');
} finally {
  await producer.disconnect();
  await pool.end();
}
