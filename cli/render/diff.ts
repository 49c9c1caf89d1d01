import { type Palette, PLAIN, type Tone } from './colour.ts';

/** A path-level change as the API sends it (shared/diff.ts's Change, read loosely). */
export interface ChangeView {
  op?: string;
  path?: string;
  old?: unknown;
  new?: unknown;
}

/** Words JSON would read as something other than a string: shown quoted so "true" and true differ. */
const LITERAL = /^(true|false|null|-?\d+(\.\d+)?([eE][+-]?\d+)?)$/;

/**
 * A value as one reads it in a diff: a plain word as it is (`1.5.0`, `opus`), anything that could be misread
 * (an empty string, spaces, a string that looks like a number) and anything structured as compact JSON.
 */
export function showValue(value: unknown): string {
  if (value === undefined) return '(none)';
  if (typeof value === 'string' && /^[^\s"'\\,]+$/.test(value) && !LITERAL.test(value)) return value;
  return JSON.stringify(value);
}

const MARKS: Record<string, [string, Tone]> = {
  added: ['+', 'good'],
  removed: ['-', 'bad'],
  changed: ['~', 'busy'],
};

/**
 * One line per change, paths aligned: `~ /software/media/version  1.0.0 → 1.1.0`, `+ /path  value` for an
 * addition, `- /path  value` for a removal (the value it had).
 */
export function renderChanges(changes: readonly ChangeView[], palette: Palette = PLAIN): string {
  if (changes.length === 0) return 'no differences\n';
  // The empty pointer is the whole document (a state compared with none).
  const label = (change: ChangeView) => (change.path ? change.path : '(root)');
  const width = Math.max(...changes.map((change) => label(change).length));
  return changes
    .map((change) => {
      const [mark, tone] = MARKS[change.op ?? ''] ?? ['?', undefined];
      const value =
        change.op === 'added'
          ? showValue(change.new)
          : change.op === 'removed'
            ? showValue(change.old)
            : `${showValue(change.old)} → ${showValue(change.new)}`;
      const path = label(change).padEnd(width);
      return `${palette.paint(mark, tone)} ${path}  ${palette.paint(value, tone)}`;
    })
    .join('\n')
    .concat('\n');
}
