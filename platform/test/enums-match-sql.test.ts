import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  AddonShortfall, AddonState, BillingMode, GateRefusalCode, HoldStatus, LimitKind, LimitRequestStatus, Currency, DeliveryState, GrantKind, LedgerEntryKind, MemberRole, NotificationChannel, NotificationType, Unit,
} from '@meterstream/schemas';

// The zod enums are the contract; the Postgres CHECK lists repeat them. Nothing else ties the two
// together, so this reads every migration and compares, column by column.
const dir = fileURLToPath(new URL('../migrations/postgres/', import.meta.url));
const sql = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort().map((f) => readFileSync(dir + f, 'utf8')).join('\n');

/** Every `CHECK (<column> IN ('a', 'b'))` in the migrations, the latest per column, as table.column -> values. */
function checkLists(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const table of sql.matchAll(/CREATE TABLE (\w+) \(([\s\S]*?)\n\);/g)) {
    for (const m of table[2]!.matchAll(/^\s*(\w+)\s[^\n]*CHECK \(\1 IN \(([^)]*)\)\)/gm)) {
      out.set(`${table[1]}.${m[1]}`, [...m[2]!.matchAll(/'([^']*)'/g)].map((v) => v[1]!));
    }
  }
  // A later migration replaces a list with ALTER TABLE t ADD CONSTRAINT c CHECK (column IN (...)).
  for (const m of sql.matchAll(/ALTER TABLE (\w+) ADD CONSTRAINT \w+ CHECK \((\w+) IN \(([^)]*)\)\)/g)) {
    out.set(`${m[1]}.${m[2]}`, [...m[3]!.matchAll(/'([^']*)'/g)].map((v) => v[1]!));
  }
  return out;
}

describe('zod enums and SQL CHECK lists', () => {
  const lists = checkLists();
  it.each([
    ['accounts.currency', Currency.options],
    ['accounts.billing_mode', BillingMode.options],
    ['grants.kind', GrantKind.options],
    ['prices.currency', Currency.options],
    ['prices.unit', Unit.options],
    ['ledger_entries.kind', LedgerEntryKind.options],
    ['ledger_entries.currency', Currency.options],
    ['notifications_outbox.type', NotificationType.options],
    ['notification_deliveries.channel', NotificationChannel.options],
    ['notification_deliveries.state', DeliveryState.options],
    ['members.role', MemberRole.options],
    ['plans.addon_shortfall', AddonShortfall.options],
    ['account_addons.state', AddonState.options],
    ['limit_requests.limit_kind', LimitKind.options],
    ['limit_requests.status', LimitRequestStatus.options],
    ['holds.currency', Currency.options],
    ['holds.refusal', GateRefusalCode.options],
    // a refused authorization is kept as a row (terminal answers), never shown as a hold
    ['holds.status', [...HoldStatus.options, 'refused']],
  ])('%s allows exactly the contract values', (column, values) => {
    expect(lists.get(column)?.slice().sort()).toEqual([...values].sort());
  });
});
