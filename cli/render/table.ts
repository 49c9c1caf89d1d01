import { type Palette, PLAIN, type Tone } from './colour.ts';

export interface Column<Row> {
  header: string;
  value: (row: Row) => string | number | boolean | undefined;
  /** Numbers read best right-aligned. */
  align?: 'left' | 'right';
  /** What the cell means (a status's colour); painted only when the palette colours. */
  tone?: (row: Row) => Tone | undefined;
}

function cell(value: string | number | boolean | undefined): string {
  // Line breaks would tear the grid apart.
  return value === undefined || value === '' ? '-' : String(value).replace(/\s*[\r\n]+\s*/g, ' ');
}

/**
 * Aligned columns separated by two spaces, headers first, no trailing blanks (so output diffs and greps
 * cleanly). Widths count UTF-16 code units, which is exact for the ids, names and versions shown here; they
 * are taken before painting, so colour never shifts a column.
 */
export function renderTable<Row>(
  columns: readonly Column<Row>[],
  rows: readonly Row[],
  palette: Palette = PLAIN,
): string {
  const grid = [
    columns.map((column) => ({ text: column.header, tone: undefined as Tone | undefined })),
    ...rows.map((row) => columns.map((c) => ({ text: cell(c.value(row)), tone: c.tone?.(row) }))),
  ];
  const widths = columns.map((_, index) =>
    Math.max(...grid.map((line) => (line[index] as { text: string }).text.length)),
  );
  return grid
    .map((line) =>
      line
        .map(({ text, tone }, index) => {
          const padding = ' '.repeat((widths[index] as number) - text.length);
          const painted = palette.paint(text, tone);
          if (columns[index]?.align === 'right') return padding + painted;
          return index === line.length - 1 ? painted : painted + padding;
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

export type DetailEntry = readonly [string, string | number | boolean | undefined, Tone?];

/** A key-value block for one resource, keys aligned; rows whose value is undefined are left out. */
export function renderDetails(entries: readonly DetailEntry[], palette: Palette = PLAIN): string {
  const shown = entries.filter(([, value]) => value !== undefined);
  const width = Math.max(0, ...shown.map(([key]) => key.length));
  return shown
    .map(([key, value, tone]) => `${key.padEnd(width)}  ${palette.paint(cell(value), tone)}`.trimEnd())
    .join('\n')
    .concat('\n');
}
