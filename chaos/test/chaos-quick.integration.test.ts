import { afterAll, describe, expect, it } from 'vitest';
import { chaosOptions } from '../src/options.js';
import { abortChaos, runChaos } from '../src/run.js';

// The fault matrix's quick form (`npm run chaos -- --quick`): a handful of each fault over 75 s of
// workload on a stack of its own, then every check. The seed is printed; CHAOS_SEED replays a run.
describe('fault matrix (quick form)', () => {
  // A timed-out run must not leave its Kafka broker (a session of its own) or Redis behind.
  afterAll(() => abortChaos());

  it('keeps every accepted event exactly once, the books balanced and nothing stuck through every fault', async () => {
    const result = await runChaos(chaosOptions([], process.env, 'quick'), (line) => process.stdout.write(`${line}\n`));
    const failed = result.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    expect(failed, `seed ${result.seed}, files in ${result.dir}`).toEqual([]);
    expect(result.checks.map((c) => c.name)).toHaveLength(18);
  }, 600_000);
});
