/**
 * Colour on a terminal only: never into a pipe or a file (whatever reads it wants plain text), never when the
 * user said no — `--no-color`, or `NO_COLOR` set to anything but the empty string (https://no-color.org) —
 * and never on a terminal that says it cannot (`TERM=dumb`).
 */
export interface ColourInputs {
  env: Readonly<Record<string, string | undefined>>;
  isTTY: boolean | undefined;
  noColorFlag?: boolean | undefined;
}

export function colourEnabled({ env, isTTY, noColorFlag }: ColourInputs): boolean {
  if (noColorFlag) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return isTTY === true;
}

/** What a value means to the reader; the palette decides how that looks. */
export type Tone = 'good' | 'bad' | 'busy' | 'quiet';

const SGR: Record<Tone, string> = { good: '32', bad: '31', busy: '33', quiet: '2' };

export interface Palette {
  readonly enabled: boolean;
  paint(text: string, tone: Tone | undefined): string;
}

export const PLAIN: Palette = { enabled: false, paint: (text) => text };

export const ANSI: Palette = {
  enabled: true,
  paint: (text, tone) => (tone === undefined || text === '' ? text : `\x1b[${SGR[tone]}m${text}\x1b[0m`),
};

export function paletteFor(inputs: ColourInputs): Palette {
  return colourEnabled(inputs) ? ANSI : PLAIN;
}

/** What the terminal shows, for width sums: the text without its SGR sequences. */
export function visibleLength(text: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the escape character is what is removed
  return text.replace(/\x1b\[[0-9;]*m/g, '').length;
}

/**
 * Host, service and rollout statuses by what they mean: serving or finished well, broken or gone, on the way
 * somewhere, or simply off. A status not listed (a future one) stays uncoloured.
 */
const STATUS_TONES: Readonly<Record<string, Tone>> = {
  running: 'good',
  succeeded: 'good',
  done: 'good',
  failed: 'bad',
  lost: 'bad',
  degraded: 'bad',
  'rolled-back': 'bad',
  aborted: 'bad',
  retired: 'quiet',
  draining: 'busy',
  booting: 'busy',
  pending: 'busy',
  starting: 'busy',
  stopping: 'busy',
  reverting: 'busy',
  paused: 'busy',
  stopped: 'quiet',
};

export function statusTone(status: string | undefined): Tone | undefined {
  if (status === undefined) return undefined;
  // "degraded (db)" is degraded.
  return STATUS_TONES[status.split(' ', 1)[0] as string];
}
