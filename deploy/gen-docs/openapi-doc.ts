import { createLogger } from '@meterstream/platform/logger';
import { buildApp } from '../../ingest/src/app.js';
import { IngestConfig } from '../../ingest/src/config.js';

/**
 * Stands in for a client the document never needs: building the app only registers routes and
 * serves nothing. Any use throws, so generation can never depend on a running service.
 */
function unused<T extends object>(client: string): T {
  return new Proxy({} as T, {
    get(_, prop) {
      throw new Error(`generating the OpenAPI document used ${client}.${String(prop)}; it must need no service`);
    },
  });
}

/** A JSON value with every object's keys sorted, so the committed file changes only with the API. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, sortKeys(v)]));
}

let document: Promise<unknown> | undefined;

/**
 * What GET /openapi.json serves, from the routes' zod schemas, on default settings, its keys
 * sorted; built once per process, as both docs/openapi.json and docs/api.md are made from it.
 */
export function openApiDocument(): Promise<unknown> {
  document ??= buildDocument();
  return document;
}

async function buildDocument(): Promise<unknown> {
  // The defaults, not this machine's environment: limits such as MAX_BATCH_EVENTS shape the document.
  const config = IngestConfig.parse({ ADMIN_API_KEY: 'openapi-generator-placeholder' });
  const app = await buildApp({
    config,
    pool: unused('postgres'),
    cache: unused('redis'),
    producer: unused('kafka'),
    ch: null,
    chDatabase: config.CLICKHOUSE_DATABASE,
    log: createLogger('openapi', 'silent'),
    listenForKeyChanges: false,
  });
  try {
    await app.ready();
    return sortKeys(app.swagger());
  } finally {
    await app.close();
  }
}

/** docs/openapi.json. */
export async function renderOpenApi(): Promise<string> {
  return `${JSON.stringify(await openApiDocument(), null, 2)}\n`;
}
