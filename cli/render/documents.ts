import { stringify as toYaml } from 'yaml';

/**
 * A JSON document as `-o json` (indented) or `-o yaml` prints it. YAML is written from the same parsed JSON,
 * without anchors or aliases and with no line folding, so it reads back as exactly that JSON.
 */
export function printDocument(body: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return `${JSON.stringify(body, null, 2)}\n`;
  return toYaml(body, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/**
 * One item of a stream (`--follow`): a JSON line (NDJSON, for jq) or a YAML document of its own, so the
 * output is a valid stream however long it runs.
 */
export function printStreamItem(item: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return `${JSON.stringify(item)}\n`;
  return `---\n${printDocument(item, 'yaml')}`;
}
