import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import type { UsageEventInput } from '@meterstream/schemas';
import { startService, type ServiceProcess } from './services.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface IngestServer {
  url: string;
  adminKey: string;
  service: ServiceProcess;
}

/** ingest/src/main.ts as its own process (a real listening server), with its own chDB directory. */
export async function startIngest(env: Record<string, string>, logDir: string, chdbPath: string, nodeFlags: string[] = []): Promise<IngestServer> {
  const port = await freePort();
  const adminKey = `bench-admin-${randomBytes(12).toString('hex')}`;
  const service = startService('ingest', 'ingest/src/main.ts', {
    ...env, ADMIN_API_KEY: adminKey, INGEST_HOST: '127.0.0.1', INGEST_PORT: String(port), CHDB_PATH: chdbPath,
  }, logDir, nodeFlags);
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, service);
  return { url, adminKey, service };
}

/** Until the ingest at url answers /healthz; fails at once if its process exits, or after timeoutMs. */
export async function waitHealthy(url: string, service: Pick<ServiceProcess, 'isRunning' | 'tail'>, timeoutMs = 60_000): Promise<void> {
  const expired = AbortSignal.timeout(timeoutMs);
  while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
    if (!service.isRunning()) throw new Error(`ingest exited at start-up:\n${service.tail()}`);
    if (expired.aborted) throw new Error(`ingest did not answer /healthz within ${timeoutMs} ms:\n${service.tail()}`);
    await sleep(200);
  }
}

export interface HttpResult {
  batch: number;
  connections: number;
  seconds: number;
  requests: number;
  accepted: number;
  eventsPerSecond: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  rejectedEvents: number;
  statusCodes: Record<string, number>;
  /** growth of usage.events during the phase (includes requests still in flight when autocannon stopped) */
  eventsOnTopic?: number;
}

/**
 * autocannon against POST /v1/events, every request a fresh batch of distinct events (Zipf accounts,
 * the workload's product mix) sent with the admin key; events/s counts what Kafka acknowledged (202).
 */
export async function runHttp(o: {
  url: string; adminKey: string; batch: number; seconds: number; connections: number; events: Generator<UsageEventInput>;
}): Promise<HttpResult> {
  let rejectedEvents = 0;
  let accepted = 0;
  const nextBody = () => {
    const items: UsageEventInput[] = [];
    for (let i = 0; i < o.batch; i++) {
      const n = o.events.next();
      if (n.done) throw new Error('the HTTP event generator ran dry');
      items.push(n.value);
    }
    return JSON.stringify(items);
  };
  const result = await autocannon({
    url: `${o.url}/v1/events`,
    connections: o.connections,
    duration: o.seconds,
    timeout: 30,
    method: 'POST',
    headers: { authorization: `Bearer ${o.adminKey}`, 'content-type': 'application/json' },
    requests: [{
      setupRequest: (req) => ({ ...req, body: nextBody() }),
      onResponse: (status, body) => {
        if (status !== 202) return;
        accepted += o.batch;
        if (!body.endsWith('"rejected":[]}')) {
          const r = JSON.parse(body) as { accepted: string[]; rejected: unknown[] };
          rejectedEvents += r.rejected.length;
          accepted -= r.rejected.length;
        }
      },
    }],
  });
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count]));
  return {
    batch: o.batch,
    connections: o.connections,
    seconds: result.duration,
    requests: result['2xx'] + result.non2xx,
    accepted,
    eventsPerSecond: accepted / result.duration,
    requestsPerSecond: result.requests.average,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    rejectedEvents,
    statusCodes,
  };
}
