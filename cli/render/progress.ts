import type { Rollout, RolloutStatus } from '../../shared/groups/model.ts';

/** Statuses a rollout never leaves: watching stops there (not at `reverting`, which ends aborted or rolled back). */
export const FINAL_STATUSES: ReadonlySet<RolloutStatus> = new Set([
  'succeeded',
  'failed',
  'rolled-back',
  'aborted',
]);

export function isFinal(status: RolloutStatus): boolean {
  return FINAL_STATUSES.has(status);
}

export type RolloutProgressView = Pick<Rollout, 'id' | 'status' | 'waves' | 'hosts'>;

const WAVE_MARKS: Record<Rollout['waves'][number]['status'], string> = {
  done: '✔',
  running: '▶',
  pending: '·',
  failed: '✘',
};

export interface ProgressCounts {
  done: number;
  failed: number;
  total: number;
  /** 1-based position of the wave being worked on (0 when there are no waves). */
  wave: number;
  waves: number;
}

export function progressCounts(rollout: RolloutProgressView): ProgressCounts {
  const { done, pending, failed } = rollout.hosts;
  const total = new Set([...done, ...pending, ...failed]).size;
  const waves = rollout.waves.length;
  const running = rollout.waves.findIndex((wave) => wave.status === 'running' || wave.status === 'failed');
  const firstPending = rollout.waves.findIndex((wave) => wave.status === 'pending');
  // The wave in hand: the running (or failed) one, else the next to start, else the last once all are done.
  const wave = waves === 0 ? 0 : running >= 0 ? running + 1 : firstPending >= 0 ? firstPending + 1 : waves;
  return { done: done.length, failed: failed.length, total, wave, waves };
}

/** `[#####-----]`, the share of hosts done; an empty rollout is complete only once it is final. */
export function progressBar(done: number, total: number, width: number, complete = false): string {
  const share = total === 0 ? (complete ? 1 : 0) : Math.min(1, done / total);
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/**
 * One line: bar, hosts done of total, the current wave, one mark per wave (✔ done, ▶ running, · pending,
 * ✘ failed) and the rollout's status. One line so a terminal can redraw it in place with a carriage return.
 */
export function renderProgress(rollout: RolloutProgressView, barWidth = 20): string {
  const counts = progressCounts(rollout);
  const bar = progressBar(counts.done, counts.total, barWidth, rollout.status === 'succeeded');
  const marks = rollout.waves.map((wave) => WAVE_MARKS[wave.status]).join('');
  const failed = counts.failed > 0 ? ` (${counts.failed} failed)` : '';
  const waves = counts.waves === 0 ? 'no waves yet' : `wave ${counts.wave}/${counts.waves} ${marks}`;
  return `${bar} ${counts.done}/${counts.total} hosts${failed}  ${waves}  ${rollout.status}`;
}

/** Cut to the terminal's width, else a wrapped line would no longer be redrawn in place. */
export function fitToWidth(line: string, columns: number | undefined): string {
  if (columns === undefined || columns <= 1 || line.length < columns) return line;
  return `${line.slice(0, columns - 2)}…`;
}

/**
 * Draws successive progress lines: on a terminal each replaces the previous one; elsewhere (a log, a pipe)
 * only a changed line is written, one per line, so the log reads as a history of changes.
 */
export class ProgressDrawer {
  #last: string | undefined;
  readonly #out: { write(text: string): void; isTTY?: boolean; columns?: number };

  constructor(out: { write(text: string): void; isTTY?: boolean; columns?: number }) {
    this.#out = out;
  }

  draw(line: string): void {
    if (line === this.#last) return;
    this.#last = line;
    if (this.#out.isTTY) this.#out.write(`\r\x1b[2K${fitToWidth(line, this.#out.columns)}`);
    else this.#out.write(`${line}\n`);
  }

  /** Leaves the cursor on a fresh line after an in-place drawing. */
  finish(): void {
    if (this.#out.isTTY && this.#last !== undefined) this.#out.write('\n');
  }
}
