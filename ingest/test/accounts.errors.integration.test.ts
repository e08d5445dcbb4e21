import { describe, expect } from 'vitest';
import { admin, createAccount, ingestTest, injector, uid } from './support.js';

// What the account-scoped routes answer to input they cannot serve: the status and the envelope.
const test = ingestTest();
const grantHeaders = () => ({ ...admin, 'idempotency-key': uid('grant') });

describe('POST /v1/accounts', () => {
  test('explains invalid input in a 400 envelope', async ({ ingest: t }) => {
    const res = await injector(t.app)('POST', '/v1/accounts', admin, { email: 'not-an-email', currency: 'GBP', billing_mode: 'prepaid' });
    expect(res.statusCode).toBe(400);
    const { error } = res.json();
    expect(error.code).toBe('VALIDATION_ERROR');
    expect(error.message).toMatch(/body\.email: .*email/i);
    expect(error.message).toMatch(/body\.currency: .*"USD"/);
  });
});

describe('grants and balance', () => {
  test('rejects a grant with more than 6 decimals and answers 404 for an unknown account', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const bad = await inject('POST', `/v1/accounts/${acct.id}/grants`, grantHeaders(), { kind: 'purchased', amount: '1.0000001' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/body\.amount: .*6 decimal places/);
    const missing = await inject('POST', '/v1/accounts/acct_missing/grants', grantHeaders(), { kind: 'purchased', amount: '1' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('ACCOUNT_NOT_FOUND');
  });

  test('takes grants up to 999999999.999999 and answers 400, not 500, above it', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const url = `/v1/accounts/${acct.id}/grants`;
    const max = await inject('POST', url, grantHeaders(), { kind: 'purchased', amount: '999999999.999999' });
    expect(max.statusCode).toBe(201);
    expect(max.json().amount).toBe('999999999.999999');
    for (const amount of ['1000000000', '999999999999999', '999999999999999.999999']) {
      const res = await inject('POST', url, grantHeaders(), { kind: 'purchased', amount });
      expect(res.statusCode, amount).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'VALIDATION_ERROR', message: 'body.amount: must be at most 999999999.999999' } });
    }
    const balance = await inject('GET', `/v1/accounts/${acct.id}/balance`, admin);
    expect(balance.json()).toMatchObject({ balance: '999999999.999999', ledger_seq: 1 });
  });

  test('answers 404 for the balance of an unknown account', async ({ ingest: t }) => {
    const missing = await injector(t.app)('GET', '/v1/accounts/acct_nobody/balance', admin);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('ACCOUNT_NOT_FOUND');
  });
});

describe('GET /v1/accounts/{id}/transactions', () => {
  test('answers 400 for a cursor it did not issue, a bad limit or kind, 404 for an unknown account', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const url = `/v1/accounts/${acct.id}/transactions`;
    const cursor = await inject('GET', `${url}?cursor=garbage`, admin);
    expect(cursor.statusCode).toBe(400);
    expect(cursor.json().error.code).toBe('INVALID_CURSOR');
    const limit = await inject('GET', `${url}?limit=0`, admin);
    expect(limit.statusCode).toBe(400);
    expect(limit.json().error.message).toMatch(/^querystring\.limit: /);
    const kind = await inject('GET', `${url}?kind=bonus`, admin);
    expect(kind.statusCode).toBe(400);
    expect(kind.json().error.message).toMatch(/^querystring\.kind: /);
    expect((await inject('GET', '/v1/accounts/acct_nobody/transactions', admin)).statusCode).toBe(404);
  });
});

describe('POST /v1/credits/projections/usage-summary', () => {
  test('answers 404 for an unknown account, 400 without account_id', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const url = '/v1/credits/projections/usage-summary';
    const missing = await inject('POST', url, admin, { account_id: 'acct_nobody' });
    expect(missing.statusCode).toBe(404);
    const invalid = await inject('POST', url, admin, {});
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error.message).toMatch(/^body\.account_id: /);
  });
});

describe('API keys', () => {
  test('answers 409 for rotating a revoked key, 404 for an unknown key or account, 400 for a malformed key id', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const [acct, stranger] = [await createAccount(t.app), await createAccount(t.app)];
    const keysUrl = `/v1/accounts/${acct.id}/keys`;
    const keyId = (await inject('GET', keysUrl, admin)).json().keys[0].id as string;
    expect((await inject('POST', `${keysUrl}/${keyId}/rotate`, admin)).statusCode).toBe(201);

    const twice = await inject('POST', `${keysUrl}/${keyId}/rotate`, admin);
    expect(twice.statusCode).toBe(409);
    expect(twice.json().error.code).toBe('KEY_REVOKED');
    const unknown = await inject('POST', `${keysUrl}/key_${'0'.repeat(24)}/rotate`, admin);
    expect(unknown.statusCode).toBe(404);
    const notTheirs = await inject('DELETE', `/v1/accounts/${stranger.id}/keys/${keyId}`, admin);
    expect(notTheirs.statusCode).toBe(404);
    expect(notTheirs.json().error.code).toBe('KEY_NOT_FOUND');
    const malformed = await inject('DELETE', `${keysUrl}/not-a-key`, admin);
    expect(malformed.statusCode).toBe(400);
    const noAccount = await inject('POST', '/v1/accounts/acct_nobody/keys', admin);
    expect(noAccount.statusCode).toBe(404);
    expect(noAccount.json().error.code).toBe('ACCOUNT_NOT_FOUND');
  });
});
