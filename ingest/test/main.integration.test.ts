import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { ADMIN_KEY, admin, bearer, collectTopic, uid } from './support.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await openStack('ingest-main');
});
afterAll(async () => {
  await stack?.close();
});

it('main.ts serves on its port and exits cleanly on SIGTERM after the accepted events are on Kafka', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'ingest/src/main.ts'], {
    env: {
      ...stack.env, ADMIN_API_KEY: ADMIN_KEY, INGEST_PORT: '0', LOG_LEVEL: 'info',
      CHDB_PATH: `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/main-${process.pid}`,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const logs: { msg?: string; url?: string }[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      logs.push(entry);
      if (entry.msg === 'ingest listening') resolve(entry.url!);
    });
    void exited.then((code) => reject(new Error(`ingest exited early with ${code}`)));
  });

  const account = await fetch(`${url}/v1/accounts`, {
    method: 'POST', headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'main@example.com', currency: 'USD', billing_mode: 'prepaid' }),
  }).then((r) => r.json() as Promise<{ id: string; api_key: string }>);
  const e = { id: uid(), account_id: account.id, product: 'tts', quantity: '4', timestamp: new Date().toISOString() };
  const res = await fetch(`${url}/v1/events`, {
    method: 'POST', headers: { ...bearer(account.api_key), 'content-type': 'application/x-ndjson' }, body: `${JSON.stringify(e)}\n`,
  });
  expect(res.status).toBe(202);

  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(logs.some((l) => l.msg?.startsWith('shutting down'))).toBe(true);
  const topic = await collectTopic(stack.kafka, stack.topics.events);
  expect((await topic.waitFor([e.id]))[0]!.key).toBe(account.id);
  await topic.stop();
});
