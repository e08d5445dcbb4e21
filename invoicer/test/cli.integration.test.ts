import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickHouse, type ClickHouseClient } from '@meterstream/platform/clickhouse';
import { migrateClickHouse } from '@meterstream/platform/migrate';
import { invoiceOfMonth } from '@meterstream/platform/stores/invoices';
import { createAccount } from '../../tests/support/fixtures.js';
import { startClickHouseServer, type ClickHouseServer } from '../../tests/support/clickhouse-server.js';
import { rate } from '../../tests/support/rated.js';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { startStripeServer, type StripeServer } from '../../tests/support/stripe-server.js';
import { saveCard } from './support.js';

// The operator's CLI as a process of its own (`invoicer run|reconcile`), on the real Postgres and a
// ClickHouse server shared with this test (embedded chDB opens a directory in one process only),
// billing through the Stripe-shaped server.

const ROOT = resolve(import.meta.dirname, '../..');
const OCT = Date.parse('2026-10-01T00:00:00Z');
const DAY = 86_400_000;

let stack: TestStack;
let server: ClickHouseServer;
let ch: ClickHouseClient;
let stripe: StripeServer;
const database = `invoicer_cli_${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  stack = await openStack('invoicer-cli');
  server = await startClickHouseServer(resolve(ROOT, `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/invoicer-cli-${process.pid}`));
  ch = await createClickHouse({ url: server.url, chdbPath: '' });
  await migrateClickHouse(ch, database);
  stripe = await startStripeServer();
}, 120_000);
afterAll(async () => {
  await stripe?.close();
  await ch?.close();
  await server?.stop();
  await stack?.close();
});

/** Runs the CLI to its exit: its exit code and what it printed. */
async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  const env = { ...process.env, ...stack.env, ...stripe.env, CLICKHOUSE_URL: server.url, CLICKHOUSE_DATABASE: database, LOG_LEVEL: 'warn' };
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'invoicer/src/cli.ts', ...args], { cwd: ROOT, env });
    return { code: 0, out: stdout };
  } catch (e) {
    const failed = e as { code: number; stdout: string; stderr: string };
    return { code: failed.code, out: `${failed.stdout}${failed.stderr}` };
  }
}

/** The data row under a header of the CLI's first table, by column name. */
function firstTable(out: string): Record<string, string> {
  const [header, row] = out.split('\n');
  const names = header!.split(/\s{2,}/);
  const values = row!.split(/\s{2,}/);
  return Object.fromEntries(names.map((n, i) => [n, values[i]!]));
}

describe('the invoicer CLI', () => {
  it('dry-runs, runs, reruns and reconciles a month as a process of its own', async () => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    await saveCard(stack, stripe, account);
    // 100 images at 0.04: 4.000000 USD due.
    await rate(stack, { ch, database }, [{ account, product: 'image-gen', quantity: 100n, unitPrice: 40_000n, at: OCT + DAY, ratedAt: OCT + DAY }]);

    const dry = await cli('run', '--month', '2026-10', '--account', account, '--dry-run');
    expect(dry.code, dry.out).toBe(0);
    expect(firstTable(dry.out)).toMatchObject({ month: '2026-10', accounts: '1', 'would invoice': '1', billed: '0' });
    expect(dry.out).toMatch(/USD\s+4\.000000/);
    expect(await invoiceOfMonth(stack.pool, account, '2026-10')).toBeUndefined();

    const run = await cli('run', '--month', '2026-10', '--account', account);
    expect(run.code, run.out).toBe(0);
    expect(firstTable(run.out)).toMatchObject({ invoiced: '1', 'held for review': '0', billed: '1', 'payment failed': '0' });
    expect(await invoiceOfMonth(stack.pool, account, '2026-10')).toMatchObject({ state: 'paid', amountDue: 4_000_000n });

    const again = await cli('run', '--month', '2026-10', '--account', account);
    expect(firstTable(again.out)).toMatchObject({ invoiced: '0', 'invoiced before': '1', billed: '0' });
    const stripeInvoices = [...stripe.objects.values()].filter((o) => o.object === 'invoice' && (o.metadata as Record<string, string>).account_id === account);
    expect(stripeInvoices.map((o) => o.status)).toEqual(['paid']);

    const reconciled = await cli('reconcile', '--month', '2026-10', '--account', account);
    expect(reconciled.code, reconciled.out).toBe(0);
    expect(reconciled.out).toMatch(/USD\s+4\.000000\s+4\.000000/);
    expect(reconciled.out).toContain('1 accounts, 0 with a difference');
  }, 120_000);

  it('refuses a malformed month with a message and a failing exit code', async () => {
    const bad = await cli('run', '--month', '2026-13');
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain('a month YYYY-MM');
  }, 60_000);
});
