export interface Column<Row> {
  header: string;
  value: (row: Row) => string | number | boolean | undefined;
  /** Numbers read best right-aligned. */
  align?: 'left' | 'right';
}

function cell(value: string | number | boolean | undefined): string {
  // Line breaks would tear the grid apart.
  return value === undefined || value === '' ? '-' : String(value).replace(/\s*[\r\n]+\s*/g, ' ');
}

/**
 * Aligned columns separated by two spaces, headers first, no trailing blanks (so output diffs and greps
 * cleanly). Widths count UTF-16 code units, which is exact for the ids, names and versions shown here.
 */
export function renderTable<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string {
  const grid = [
    columns.map((column) => column.header),
    ...rows.map((row) => columns.map((c) => cell(c.value(row)))),
  ];
  const widths = columns.map((_, index) => Math.max(...grid.map((line) => (line[index] as string).length)));
  return grid
    .map((line) =>
      line
        .map((text, index) => {
          const width = widths[index] as number;
          const last = index === line.length - 1;
          if (columns[index]?.align === 'right') return text.padStart(width);
          return last ? text : text.padEnd(width);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

/** A key-value block for one resource, keys aligned; rows whose value is undefined are left out. */
export function renderDetails(entries: readonly [string, string | number | boolean | undefined][]): string {
  const shown = entries.filter(([, value]) => value !== undefined);
  const width = Math.max(0, ...shown.map(([key]) => key.length));
  return shown
    .map(([key, value]) => `${key.padEnd(width)}  ${cell(value)}`.trimEnd())
    .join('\n')
    .concat('\n');
}
