import { renderApiDoc } from './api-doc.js';
import { renderConfigDoc } from './config-doc.js';
import { renderOpenApi } from './openapi-doc.js';

/** The repository root, which every generated file's path is relative to. */
export const ROOT = new URL('../../', import.meta.url);

/** The committed files derived from the zod schemas and the routes: `npm run docs` writes them, a unit test checks them. */
export const GENERATED_DOCS: readonly { file: string; render: () => string | Promise<string> }[] = [
  { file: 'docs/config.md', render: () => renderConfigDoc(ROOT) },
  { file: 'docs/openapi.json', render: renderOpenApi },
  { file: 'docs/api.md', render: renderApiDoc },
];
