// `npm run migrate`: Postgres migrations, Kafka topics and ClickHouse DDL, each idempotent.
import { BaseConfig, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { migrateClickHouse, migratePostgres } from './migrate.js';
import { createKafka, ensureTopicsOf } from './kafka.js';
import { createClickHouse } from './clickhouse.js';

const config = loadConfig(BaseConfig);
const log = createLogger('migrate', config.LOG_LEVEL);
const applied = await migratePostgres(config.DATABASE_URL, log);
await ensureTopicsOf(createKafka(config.KAFKA_BROKERS, 'meterstream-migrate', log, config), config.KAFKA_TOPIC_PREFIX, config.KAFKA_EVENTS_PARTITIONS);
const ch = await createClickHouse({ url: config.CLICKHOUSE_URL, chdbPath: config.CHDB_PATH });
await migrateClickHouse(ch, config.CLICKHOUSE_DATABASE, log);
await ch.close();
log.info({ postgres: applied.length ? applied : 'up to date', clickhouse: config.CLICKHOUSE_URL ?? config.CHDB_PATH }, 'migrations applied');
