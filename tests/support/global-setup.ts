import { rmSync } from 'node:fs';
import pg from 'pg';
import { migratePostgres } from '@meterstream/platform/migrate';

// Each test run gets its own database and Redis/Kafka prefixes, so runs never collide.
// With MS_TEST_STACK=docker the services come from testcontainers instead of deploy/up.sh.
export default async function setup() {
  const containers = process.env.MS_TEST_STACK === 'docker' ? await (await import('./containers.js')).startContainers() : undefined;
  if (containers) Object.assign(process.env, containers.env);
  const run = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  base.pathname = `/ms_test_${run}`;
  process.env.DATABASE_URL = base.toString();
  process.env.REDIS_PREFIX = `mst:${run}:`;
  process.env.KAFKA_TOPIC_PREFIX = `t${run}.`;
  process.env.MS_TEST_RUN = run;
  process.env.LOG_LEVEL ??= 'warn';
  await migratePostgres(process.env.DATABASE_URL);

  return async () => {
    const admin = base;
    admin.pathname = '/postgres';
    const c = new pg.Client({ connectionString: admin.toString() });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "ms_test_${run}" WITH (FORCE)`).catch(() => undefined);
    await c.end();
    rmSync(`.chdb/test-${run}`, { recursive: true, force: true });
    await containers?.stop();
  };
}
