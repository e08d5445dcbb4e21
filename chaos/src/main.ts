// `npm run chaos` (full form) / `npm run chaos -- --quick`: see chaos/README.md.
import { chaosOptions } from './options.js';
import { abortChaos, runChaos } from './run.js';

const opts = chaosOptions(process.argv.slice(2), process.env);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`[chaos] ${signal}: stopping the run's services, ClickHouse, Kafka broker and Redis (files and database kept)`);
    void abortChaos().finally(() => process.exit(130));
  });
}
const result = await runChaos(opts);
process.exit(result.ok ? 0 : 1);
