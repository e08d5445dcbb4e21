import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Result {
  ok: boolean;
  error?: string;
  checks: { name: string; ok: boolean; detail: string }[];
}

// `npm run bench:quick` as its own process, judged on exactness only: timings on a shared machine
// say nothing here, a wrong total or a stalled pipeline always does.
describe('bench --quick', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ms-bench-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('rates every event exactly once through Postgres, Redis and ClickHouse, invoices every account once, and says so', { timeout: 360_000 }, async () => {
    const out = join(dir, 'quick.json');
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/src/main.ts', '--quick', '--out', out], {
      cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 330_000); // the harness cleans up on SIGTERM
    const [code] = await once(child, 'exit');
    clearTimeout(timer);

    const result = JSON.parse(readFileSync(out, 'utf8')) as Result;
    const failed = result.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    expect(result.error, output.slice(-3000)).toBeUndefined();
    expect(failed).toEqual([]);
    const names = result.checks.map((c) => c.name).join('\n');
    for (const part of ['exactly once', 'independent recomputation', 'burned + postpaid + overdraft', 'Redis states', 'ClickHouse rated_events', 'planted errors', 'invoiced exactly once']) {
      expect(names).toContain(part);
    }
    expect(result.ok).toBe(true);
    expect(code).toBe(0);
  });
});
