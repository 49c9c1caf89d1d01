/** Every benchmark prints JSON lines: {"name","value","unit",...}; `floor` and `ratio` where a raw floor exists. */
export function emit(line: { name: string; value: number; unit: string; [extra: string]: unknown }): void {
  console.log(JSON.stringify(line));
}

export function round(value: number, digits = 3): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
