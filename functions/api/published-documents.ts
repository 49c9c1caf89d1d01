/**
 * The documents the api publishes about itself: the OpenAPI document (GET /openapi.json) and the snapshot JSON
 * Schema (GET /schemas/snapshot.json). Both are generated from the route table and its zod schemas
 * (functions/api/openapi.ts). On Lambda they are generated at build time and shipped as files beside the
 * bundle, so the bundle carries neither the generator nor zod's JSON-Schema code (~30 KB, and the time to run
 * it on a cold start); local mode and tests generate them in-process (`generatedDocuments`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface PublishedDocuments {
  openApi(): Promise<unknown>;
  snapshotSchema(): Promise<unknown>;
}

/** The files' names beside the bundle and in dist/ (`npm run openapi`). */
export const PUBLISHED_FILES = {
  openApi: 'openapi.json',
  snapshotSchema: 'snapshot.schema.json',
} as const;

/** Read once, on the first request for each, from the files the build put in `directory`. */
export function bundledDocuments(directory: string): PublishedDocuments {
  const cache = new Map<string, Promise<unknown>>();
  const load = (file: string) => {
    let document = cache.get(file);
    if (!document) {
      document = readFile(join(directory, file), 'utf8').then((text) => JSON.parse(text) as unknown);
      // A failed read is not kept: the next request tries again.
      document.catch(() => cache.delete(file));
      cache.set(file, document);
    }
    return document;
  };
  return {
    openApi: () => load(PUBLISHED_FILES.openApi),
    snapshotSchema: () => load(PUBLISHED_FILES.snapshotSchema),
  };
}
