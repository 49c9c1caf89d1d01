/**
 * `npm run openapi`: writes the OpenAPI document and the snapshot JSON Schema to dist/ (or the directory given),
 * generated from the route table exactly as the api serves them at GET /openapi.json and GET /schemas/snapshot.json.
 */
import * as path from 'node:path';
import { writePublishedDocuments } from '../functions/api/openapi.ts';
import { PUBLISHED_FILES } from '../functions/api/published-documents.ts';

const outDir = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', 'dist'));
writePublishedDocuments(outDir);
for (const file of Object.values(PUBLISHED_FILES)) {
  console.log(`wrote ${path.relative(process.cwd(), path.join(outDir, file))}`);
}
