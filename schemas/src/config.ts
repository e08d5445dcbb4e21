import { z } from 'zod';

/** Settings every service shares. Services extend it with their own and parse once at start-up. */
export const BaseConfig = z.object({
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/meterstream'),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().default('ms:'),
  KAFKA_BROKERS: z.string().min(1).default('127.0.0.1:9092'),
  KAFKA_TOPIC_PREFIX: z.string().default(''),
  KAFKA_EVENTS_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(12),
  CLICKHOUSE_URL: z.url().optional(),
  CLICKHOUSE_DATABASE: z.string().regex(/^\w+$/).default('meterstream'),
  CHDB_PATH: z.string().default('.chdb/default'),
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
