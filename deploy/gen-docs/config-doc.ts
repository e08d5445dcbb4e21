import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { BaseConfig } from '@meterstream/platform/config';
import { IngestConfig } from '../../ingest/src/config.js';
import { InvoicerConfig } from '../../invoicer/src/config.js';
import { NotifyConfig } from '../../ledger/src/notifications/config.js';
import { AutoTopUpConfig } from '../../ledger/src/scheduler.js';
import { RaterConfig } from '../../rater/src/config.js';
import { SinkConfig } from '../../sink/src/config.js';

/**
 * Each service's own schema (the scheduler's: BaseConfig and the delivery of notifications); a
 * variable of BaseConfig is used by all of them (and by migrate and replay). A variable several
 * services read is described by the first of them.
 */
const SERVICES = { ingest: IngestConfig, rater: RaterConfig, sink: SinkConfig, scheduler: NotifyConfig.extend(AutoTopUpConfig.shape), invoicer: InvoicerConfig } satisfies Record<string, z.ZodObject>;

/**
 * Variables read by the shell scripts and the demo, which parse no zod schema. Their defaults
 * are read from the source file, as the script spells them (`${NAME:-default}`, or
 * `process.env.NAME ?? default` in TypeScript), so that they cannot drift either.
 */
const SCRIPT_VARIABLES: readonly { name: string; file: string; usedBy: string; description: string }[] = [
  { name: 'KAFKA_PORT', file: 'deploy/lib.sh', usedBy: '`deploy/up.sh`', description: 'Port of the local Kafka broker.' },
  { name: 'KAFKA_CONTROLLER_PORT', file: 'deploy/lib.sh', usedBy: '`deploy/up.sh`', description: "Port of the local broker's KRaft controller." },
  { name: 'KAFKA_HEAP_OPTS', file: 'deploy/up.sh', usedBy: '`deploy/up.sh`', description: "JVM heap options of the local broker." },
  { name: 'KAFKA_START_TIMEOUT', file: 'deploy/up.sh', usedBy: '`deploy/up.sh`', description: 'Seconds to wait for the local broker to serve requests.' },
  { name: 'DEMO_ACCOUNTS', file: 'deploy/demo.ts', usedBy: '`npm run demo`', description: 'Accounts the demo opens (every 5th postpaid, with a saved card).' },
  { name: 'DEMO_EVENTS', file: 'deploy/demo.ts', usedBy: '`npm run demo`', description: 'Calls the demo makes through the spend gate (withCredits), each a usage event when it succeeds.' },
];

interface Property {
  description?: string;
  default?: unknown;
  type?: string;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  minimum?: number;
  maximum?: number;
}

const code = (v: unknown) => `\`${String(v)}\``;
const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function defaultOf(p: Property, required: boolean): string {
  if (required) return 'required';
  if (p.default === undefined) return 'unset';
  return p.default === '' ? 'empty' : code(p.default);
}

/** What the schema accepts, in words (a value outside it stops start-up). */
function accepts(p: Property): string {
  if (p.enum) return p.enum.map(code).join(', ');
  if (p.type === 'integer') {
    const hasMax = p.maximum !== undefined && p.maximum < Number.MAX_SAFE_INTEGER;
    return hasMax ? `integer ${p.minimum ?? ''}..${p.maximum}` : `integer >= ${p.minimum}`;
  }
  if (p.format === 'uri') return 'URL';
  if (p.pattern) return `matches ${code(p.pattern)}`;
  if (p.minLength) return p.minLength === 1 ? 'non-empty text' : `${p.minLength}+ characters`;
  return 'text';
}

/** Rows of the services' table, in schema order: BaseConfig's first, then each service's own. */
function serviceRows(): string[] {
  const schemas: [usedBy: string, z.ZodObject][] = [['all', BaseConfig], ...Object.entries(SERVICES)];
  const usedBy = new Map<string, string[]>();
  for (const [service, schema] of schemas) {
    for (const name of Object.keys(schema.shape)) {
      if (service !== 'all' && name in BaseConfig.shape) continue;
      usedBy.set(name, [...(usedBy.get(name) ?? []), service]);
    }
  }
  const properties = new Map<string, { p: Property; required: boolean }>();
  for (const [, schema] of schemas) {
    const json = z.toJSONSchema(schema, { io: 'input' }) as { properties: Record<string, Property>; required?: string[] };
    for (const [name, p] of Object.entries(json.properties)) {
      if (!properties.has(name)) properties.set(name, { p, required: json.required?.includes(name) ?? false });
    }
  }
  return [...usedBy].map(([name, services]) => {
    const { p, required } = properties.get(name)!;
    if (!p.description) throw new Error(`${name} has no description: add .describe('...') to it in its config schema`);
    return `| ${code(name)} | ${defaultOf(p, required)} | ${cell(accepts(p))} | ${services.join(', ')} | ${cell(p.description)} |`;
  });
}

function scriptDefault(root: URL, v: (typeof SCRIPT_VARIABLES)[number]): string {
  const source = readFileSync(new URL(v.file, root), 'utf8');
  const shell = new RegExp(`\\$\\{${v.name}:-([^}]*)\\}`).exec(source);
  if (shell) return code(shell[1]);
  const ts = new RegExp(`process\\.env\\.${v.name} \\?\\? ([\\d_]+)`).exec(source);
  if (ts) return code(ts[1]!.replaceAll('_', ''));
  throw new Error(`${v.file} sets no default for ${v.name} (\${${v.name}:-...} or process.env.${v.name} ?? <number>)`);
}

/** docs/config.md: every environment variable, its default, what it accepts and who reads it. */
export function renderConfigDoc(root: URL): string {
  const scripts = SCRIPT_VARIABLES.map((v) => `| ${code(v.name)} | ${scriptDefault(root, v)} | ${v.usedBy} | ${cell(v.description)} |`);
  return [
    '# Configuration',
    '',
    '<!-- Generated by `npm run docs` from the zod config schemas (their `.describe()` texts); do not edit by hand. -->',
    '',
    'Every service parses its environment with zod at start-up (`platform/src/config.ts` for the settings all of',
    'them share, `ingest/src/config.ts`, `rater/src/config.ts`, `sink/src/config.ts`, the scheduler\'s',
    '`ledger/src/notifications/config.ts`, `invoicer/src/config.ts`): an unset variable takes',
    'its default, and a missing required or bad value stops start-up with one line per problem. Used by `all`:',
    'every service, `npm run migrate` and `npm run replay`.',
    '',
    '## Services',
    '',
    '| variable | default | accepts | used by | what it does |',
    '|---|---|---|---|---|',
    ...serviceRows(),
    '',
    '## Local stack and demo',
    '',
    '| variable | default | used by | what it does |',
    '|---|---|---|---|',
    ...scripts,
    '',
  ].join('\n');
}
