import { describe, expect } from 'vitest';
import { admin, ingestTest, injector } from './support.js';

const test = ingestTest();

describe('service routes', () => {
  test('serves an OpenAPI document generated from the schemas, errors included', async ({ ingest: t }) => {
    const res = await injector(t.app)('GET', '/openapi.json');
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    const events = doc.paths['/v1/events'].post;
    expect(events.requestBody.content['application/json'].schema.anyOf).toHaveLength(2);
    expect(events.responses['202'].content['application/json'].schema.properties).toHaveProperty('rejected');
    expect(events.responses['413'].content['application/json'].schema.properties.error.required).toEqual(['code', 'message']);
    for (const path of ['/v1/accounts', '/v1/accounts/{id}/balance', '/v1/accounts/{id}/transactions', '/v1/prices', '/v1/prices/{product}', '/v1/credits/projections/usage-summary']) {
      expect(doc.paths).toHaveProperty([path]);
    }
    expect(doc.paths).not.toHaveProperty(['/openapi.json']);
  });

  test('answers unknown routes with a 404 envelope', async ({ ingest: t }) => {
    const res = await injector(t.app)('GET', '/v1/nope?x=1', admin);
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'no route GET /v1/nope' } });
  });
});
