import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The schema's bound (the key allows 16 digits, this is less); a millisecond clock needs 13 until 2286. */
const MAX_SEQ = Number.MAX_SAFE_INTEGER;

export interface SequenceOptions {
  stateDir: string;
  hostId: string;
  /** Milliseconds since the epoch; injectable so a test can turn the clock back. */
  now?: () => number;
}

interface SequenceFile {
  hostId: string;
  seq: number;
}

/**
 * Per-host, strictly increasing snapshot sequence numbers that survive restarts.
 *
 * Every number handed out is max(last + 1, now in ms). The persisted value stops a restart from going
 * backwards when the clock did (NTP step, a VM resumed from a snapshot); the clock stops it from going
 * backwards when the state file is gone (a fresh disk, a replaced instance with the same id). Only both at
 * once — file lost *and* clock behind the last number issued — could reuse a number, and then the ingest
 * treats the snapshot as stale rather than corrupting anything. Numbers run ahead of the clock only
 * when more than one is issued per millisecond, which a host posting on change never does.
 *
 * A number is persisted before it is returned, so a crash right after an upload cannot issue it again.
 */
export class SnapshotSequence {
  readonly #file: string;
  readonly #stateDir: string;
  readonly #hostId: string;
  readonly #now: () => number;
  #last: number | undefined;

  constructor(options: SequenceOptions) {
    this.#stateDir = options.stateDir;
    this.#hostId = options.hostId;
    this.#file = join(options.stateDir, `seq-${options.hostId}.json`);
    this.#now = options.now ?? Date.now;
  }

  /** The highest number issued so far (0 when none, not even in an earlier run). */
  async last(): Promise<number> {
    if (this.#last === undefined) this.#last = await this.#readPersisted();
    return this.#last;
  }

  async next(): Promise<number> {
    const last = await this.last();
    const seq = Math.max(last + 1, Math.floor(this.#now()));
    if (seq > MAX_SEQ) throw new RangeError(`sequence ${seq} exceeds the snapshot key's 16 digits`);
    await this.#persist(seq);
    this.#last = seq;
    return seq;
  }

  async #readPersisted(): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
    // A torn or foreign file must not stop the agent: the clock still keeps numbers moving forward.
    try {
      const parsed = JSON.parse(text) as Partial<SequenceFile>;
      return parsed.hostId === this.#hostId && Number.isSafeInteger(parsed.seq) ? (parsed.seq as number) : 0;
    } catch {
      return 0;
    }
  }

  async #persist(seq: number): Promise<void> {
    await mkdir(this.#stateDir, { recursive: true });
    // Write-then-rename: a crash mid-write leaves the previous file whole instead of a truncated one.
    const temp = `${this.#file}.${process.pid}.tmp`;
    const body: SequenceFile = { hostId: this.#hostId, seq };
    await writeFile(temp, `${JSON.stringify(body)}\n`, 'utf8');
    await rename(temp, this.#file);
  }
}
