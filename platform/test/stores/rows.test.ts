import { describe, expect, it } from 'vitest';
import { AccountRow } from '../../src/stores/accounts.js';
import { ApiKeyRow } from '../../src/stores/api-keys.js';
import { PriceRow } from '../../src/stores/prices.js';
import { parseRows, RowShapeError } from '../../src/stores/rows.js';

// Rows as pg hands them over with platform/postgres's type parsers: int8 as bigint, timestamptz as Date.
const at = new Date('2025-03-01T10:00:00.000Z');

describe('store rows parsed into domain types', () => {
  it('reads a price with exact bigint money', () => {
    const row = { product: 'chat', currency: 'USD', unit: 'token', unit_price: 9_223_372_036_854_775_807n, per: 1000n, updated_at: at };
    expect(parseRows('prices', PriceRow, [row])).toEqual([
      { product: 'chat', currency: 'USD', unit: 'token', unitPrice: 9_223_372_036_854_775_807n, per: 1000n, updatedAt: at },
    ]);
  });

  it('reads an account and a key, revoked or not', () => {
    const account = { id: 'a1', email: 'a@example.com', currency: 'EUR', billing_mode: 'postpaid', plan_id: 'default-eur-postpaid', billing_anchor_day: 12, created_at: at };
    expect(parseRows('accounts', AccountRow, [{ ...account, closed_at: null }, { ...account, closed_at: at }])).toEqual([
      { id: 'a1', email: 'a@example.com', currency: 'EUR', billingMode: 'postpaid', planId: 'default-eur-postpaid', billingAnchorDay: 12, createdAt: at, closedAt: null },
      { id: 'a1', email: 'a@example.com', currency: 'EUR', billingMode: 'postpaid', planId: 'default-eur-postpaid', billingAnchorDay: 12, createdAt: at, closedAt: at },
    ]);
    const key = { id: `key_${'0a'.repeat(12)}`, kind: 'member', account_id: 'a1', tenant_id: null, member_id: `mem_${'0b'.repeat(12)}`, role: 'billing', created_at: at };
    const record = { id: key.id, kind: 'member', accountId: 'a1', tenantId: null, memberId: key.member_id, role: 'billing', createdAt: at };
    expect(parseRows('api_keys', ApiKeyRow, [{ ...key, revoked_at: null }, { ...key, revoked_at: at }])).toEqual([
      { ...record, revokedAt: null },
      { ...record, revokedAt: at },
    ]);
  });

  it.each([
    ['money as text (int8 read without the bigint parser)', { unit_price: '1500' }, 'prices row 1: unit_price:'],
    ['money as a lossy number', { unit_price: 1500 }, 'prices row 1: unit_price:'],
    ['a currency the contract does not know', { currency: 'GBP' }, 'prices row 1: currency:'],
    ['a unit the contract does not know', { unit: 'byte' }, 'prices row 1: unit:'],
    ['a timestamp as text', { updated_at: '2025-03-01T10:00:00Z' }, 'prices row 1: updated_at:'],
    ['a missing column', { per: undefined }, 'prices row 1: per:'],
  ])('refuses %s, naming the table, the row and the field', (_, change, message) => {
    const good = { product: 'chat', currency: 'USD', unit: 'token', unit_price: 2000n, per: 1000n, updated_at: at };
    const parse = () => parseRows('prices', PriceRow, [good, { ...good, ...change }]);
    expect(parse).toThrow(RowShapeError);
    expect(parse).toThrow(message);
  });

  it('refuses a key row whose id is not a key id', () => {
    expect(() => parseRows('api_keys', ApiKeyRow, [{ id: 'k1', kind: 'service', account_id: 'a1', tenant_id: null, member_id: null, role: null, created_at: at, revoked_at: null }]))
      .toThrow('api_keys row 0: id:');
  });
});
