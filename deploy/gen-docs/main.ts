// `npm run docs`: regenerates the committed docs from the zod schemas.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_DOCS, ROOT } from './generated-docs.js';

for (const doc of GENERATED_DOCS) {
  const path = fileURLToPath(new URL(doc.file, ROOT));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, await doc.render());
  console.log(`wrote ${doc.file}`);
}
