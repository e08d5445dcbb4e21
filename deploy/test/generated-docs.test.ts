import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GENERATED_DOCS, ROOT } from '../gen-docs/generated-docs.js';

const committed = (file: string) => {
  try {
    return readFileSync(new URL(file, ROOT), 'utf8');
  } catch {
    return '(missing)';
  }
};

describe('generated docs', () => {
  it.each(GENERATED_DOCS.map((d) => [d.file, d] as const))('%s matches the zod schemas', async (file, doc) => {
    expect(committed(file), `${file} is out of date with the zod schemas: run \`npm run docs\` and commit the result`).toBe(await doc.render());
  });
});
