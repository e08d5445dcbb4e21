import { z } from 'zod';

const ms = (fallback: number) => z.coerce.number().int().min(1).max(3_600_000).default(fallback);

/** How long each client waits before giving up, instead of hanging on a dependency that stopped answering. */
export const ClientTimeouts = z.object({
  PG_CONNECT_TIMEOUT_MS: ms(5_000).describe('How long to wait for a Postgres connection; then the query fails: 503 at ingest, a retried batch in the rater.'),
  PG_STATEMENT_TIMEOUT_MS: ms(30_000).describe('Postgres `statement_timeout` of every pooled connection.'),
  PG_IDLE_IN_TRANSACTION_TIMEOUT_MS: ms(60_000).describe('Postgres ends a transaction left idle this long, freeing its locks.'),
  REDIS_CONNECT_TIMEOUT_MS: ms(3_000).describe('How long to wait for a Redis connection.'),
  REDIS_COMMAND_TIMEOUT_MS: ms(2_000).describe('How long a Redis command may take, also while Redis is unreachable: readers then answer from Postgres.'),
  KAFKA_CONNECTION_TIMEOUT_MS: ms(3_000).describe('How long to wait for a connection to a Kafka broker.'),
  KAFKA_REQUEST_TIMEOUT_MS: ms(30_000).describe('How long a Kafka request may take.'),
});
export type ClientTimeouts = z.infer<typeof ClientTimeouts>;
export const CLIENT_TIMEOUT_DEFAULTS: ClientTimeouts = ClientTimeouts.parse({});

/** Settings every service shares. Services extend it with their own and parse once at start-up. */
export const BaseConfig = z.object({
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info').describe('Log level (pino, JSON lines on stdout).'),
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/meterstream').describe('Postgres, the source of truth (the migrations create the database if missing).'),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379').describe('Redis: the balance cache and the shared rate-limit counts.'),
  REDIS_PREFIX: z.string().default('ms:').describe('Prefix of every Redis key.'),
  KAFKA_BROKERS: z.string().min(1).default('127.0.0.1:9092').describe('Kafka brokers, `host:port` separated by commas; when set, `deploy/up.sh` starts no broker.'),
  KAFKA_TOPIC_PREFIX: z.string().default('').describe('Prefix of the topic names `usage.events`, `usage.rated`, `usage.dlq` and `ledger.entries`.'),
  KAFKA_EVENTS_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(12).describe('Partitions of `usage.events` and `usage.rated` when they are created (an existing topic keeps its own).'),
  CLICKHOUSE_URL: z.url().optional().describe("A ClickHouse server, written by the sink and read by ingest's usage summary; unset: embedded chDB, which only the process running the sink can read."),
  CLICKHOUSE_DATABASE: z.string().regex(/^\w+$/).default('meterstream').describe('The ClickHouse database the sink writes and ingest reads.'),
  CHDB_PATH: z.string().default('.chdb/default').describe('Data directory of embedded chDB (one process per directory).'),
  ...ClientTimeouts.shape,
});
export type BaseConfig = z.infer<typeof BaseConfig>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment; a missing or bad value stops start-up with one line per problem. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
