import { expect } from 'vitest';
import { freePort } from '@meterstream/bench/http';
import { test } from '../../tests/support/test.js';
import { startService, waitServing } from '../../tests/support/processes.js';
import { ADMIN_KEY, admin, bearer, collectTopic, uid } from './support.js';

test('main.ts serves on its port and exits cleanly on SIGTERM after the accepted events are on Kafka', async ({ stack }) => {
  const port = await freePort();
  const ingest = startService('ingest/src/main.ts', {
    ...stack.env, ADMIN_API_KEY: ADMIN_KEY, INGEST_HOST: '127.0.0.1', INGEST_PORT: String(port),
    CHDB_PATH: `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/main-${process.pid}`,
  });
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitServing(ingest, url);

    const account = await fetch(`${url}/v1/accounts`, {
      method: 'POST', headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'main@example.com', currency: 'USD', billing_mode: 'prepaid' }),
    }).then((r) => r.json() as Promise<{ id: string; api_key: string }>);
    const e = { id: uid(), account_id: account.id, product: 'tts', quantity: '4', timestamp: new Date().toISOString() };
    const res = await fetch(`${url}/v1/events`, {
      method: 'POST', headers: { ...bearer(account.api_key), 'content-type': 'application/x-ndjson' }, body: `${JSON.stringify(e)}\n`,
    });
    expect(res.status).toBe(202);

    expect(await ingest.kill('SIGTERM'), ingest.output()).toBe(0);
    const topic = await collectTopic(stack.kafka, stack.topics.events);
    const [m] = await topic.waitFor([e.id]);
    expect(m!.key).toBe(account.id);
    expect(m!.value).toEqual({ ...e, quantity: '4.000000' });
    await topic.stop();
  } finally {
    await ingest.kill('SIGKILL');
  }
});
